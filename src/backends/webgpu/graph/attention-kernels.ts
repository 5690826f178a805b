/**
 * The general attention ops on the webgpu backend's flash kernel (../kernels/attention.ts, the generator the
 * packed-QKV op uses too): each op's own contract validates the node on its inputs' dims (no data read), the
 * node maps onto strided views of Q, K, V and the output, and one dispatch covers every (row tile, head,
 * batch) — causal offset, broadcast additive bias, key lengths and GQA (query head n reads kv head
 * n / (N / Nkv), no repeated K/V) are uniforms and flags of that one generator.
 *
 * Covered: mhafuse.Attention (float32; key_lengths read on the host; past_key/past_value appended on the
 * device into present_key/present_value), com.microsoft.MultiHeadAttention and com.microsoft.Attention
 * without past state, GroupQueryAttention (in-op rotary too), ONNX Attention-23/24 (past concatenated on the
 * device as for mhafuse.Attention, no softcap). Declined (the CPU reference runs, as a
 * reported fallback): float16 tensors, and head sizes whose tiles exceed the device's workgroup memory.
 *
 * Precision fp16: Q, K, V, the caches they are copied into, the present outputs and the output are f16 (a
 * producer's f32 value is cast first), the score bias stays f32, and the flash kernel runs on tensor cores where
 * the session chose them and the problem fits (../kernels/attention-tc.ts: causal, bias, GQA and Sq ≠ Skv
 * included), else its SIMT f16 form — softmax and accumulation in f32 either way.
 */
import { OpError } from "../../../errors.js";
import type { Node } from "../../../ir/graph.js";
import { Tensor as HostTensor, type Tensor } from "../../../ir/tensor.js";
import { attentionDimsOf, causalAttr, keyLengthsOf, pastLength, scaleAttr } from "../../../ops/attention.js";
import type { AttentionDims, StridedLayout } from "../../../ops/attention-args.js";
import { additiveMask, attention23Geometry } from "../../../ops/attention23.js";
import {
  checkAttentionBias,
  contribAttentionGeometry,
  maskBias,
  maskFilterValue,
  mhaCausalOffset,
  mhaGeometry,
} from "../../../ops/contrib-attention.js";
import { gqaGeometry, gqaPastLengths } from "../../../ops/contrib-decoder.js";
import { attrFloat, attrInt } from "../../../ops/registry.js";
import { attentionSharedBytes, broadcastBiasArg, flashAttention } from "../kernels/attention.js";
import { binary, broadcastShape } from "../kernels/elementwise.js";
import { gemm } from "../kernels/gemm.js";
import { contiguousStrides, stridedCopy } from "../kernels/layout.js";
import { rotary } from "../kernels/rotary.js";
import { type GpuKernelContext, type GpuKernelDef, gemmPrecisionOf, storageOf } from "./kernel-context.js";
import { asShapeTensor, type DeviceValue, isDevice, type RunValue } from "./values.js";

const isF32 = (v: RunValue | undefined) => v === undefined || v.type === "float32";

/** fp16 mode: Q, K, V, caches and outputs stored as f16. */
const half = (kc: GpuKernelContext): boolean => kc.f16 !== undefined;
/** flashAttention's precision arguments: fp16 mode takes the session's attention kernel where it fits. */
const attentionPrecision = (kc: GpuKernelContext) =>
  half(kc)
    ? ({ precision: "fp16", f16Kernel: kc.attentionKernel, f16KernelPreferred: true } as const)
    : ({ precision: "fp32" } as const);
/** A new buffer in the storage of this kernel's activations. */
const allocAct = (kc: GpuKernelContext, dims: readonly number[]): DeviceValue =>
  kc.alloc(dims, "float32", half(kc));

/** Why the flash kernel cannot take these head sizes on this device (its smallest row tile), or undefined. */
function fitsWorkgroupMemory(limit: number, d: AttentionDims): string | undefined {
  const need = attentionSharedBytes({ H: d.headSize, HV: d.vHeadSize, Br: 32 });
  return need > limit
    ? `head size ${d.headSize}/${d.vHeadSize} needs ${need} B of workgroup memory`
    : undefined;
}

/** mhafuse.Attention's key_lengths as int32, each within the past + current keys. */
function keyLengthsData(node: Node, inputs: readonly (RunValue | undefined)[]): Int32Array {
  const [q, k, v, , lengths, pk] = inputs;
  const d = attentionDimsOf(node, asShapeTensor(q)!, asShapeTensor(k)!, asShapeTensor(v)!);
  const past = pk ? pastOf(node, d, pk, d.headSize, "past_key") : 0;
  return keyLengthsOf(node, lengths as Tensor, d.batch, past + d.seqKV, "key_lengths");
}

/**
 * mhafuse.Attention: Q [B,Sq,N·H], K [B,Skv,Nkv·H], V [B,Skv,Nkv·Hv] read as BSNH; with past_key /
 * past_value [B,Nkv,P,H] the cache is appended on the device (`withPast`, shared with Attention-23) into the
 * present_key / present_value buffers the flash kernel then reads; causal bottom-right over the P + Skv keys.
 */
export const mhafuseAttentionDef: GpuKernelDef = {
  opType: "Attention",
  domain: "mhafuse",
  types: ["float32"],
  hostInputs: [4],
  // key_lengths only become bytes (checked against past + current keys): a replay rewrites them.
  hostData: { 4: keyLengthsData },
  accepts(node, _o, inputs, gpu) {
    const [q, k, v, bias, , pk, pv] = inputs;
    if (!q || !k || !v) return "missing Q, K or V";
    // Inputs or outputs beyond those of the op's contract: declined rather than ignored.
    if (inputs.slice(7).some((x) => x !== undefined)) return "inputs beyond past_value";
    if (node.outputs.slice(3).some((o) => o)) return "outputs beyond present_value";
    if (![q, k, v, bias, pk, pv].every(isF32)) return "a non-float32 input";
    if (!pk !== !pv) return "past_key without past_value";
    // The contract's own validation, on dims: a malformed node throws the CPU reference's error.
    const d = attentionDimsOf(node, asShapeTensor(q)!, asShapeTensor(k)!, asShapeTensor(v)!);
    if (pk) pastOf(node, d, pk, d.headSize, "past_key");
    if (pv) pastOf(node, d, pv, d.vHeadSize, "past_value");
    return fitsWorkgroupMemory(gpu.gpu.limits.maxComputeWorkgroupStorageSize, d);
  },
  run(kc, inputs) {
    const node: Node = kc.node;
    const [q, k, v, bias, lengths, pk, pv] = inputs;
    const d = attentionDimsOf(node, asShapeTensor(q)!, asShapeTensor(k)!, asShapeTensor(v)!);
    const st = storageOf(kc);
    const Q = kc.device(q!, st);
    const kv = withPast(
      kc,
      d,
      { t: kc.device(k!, st), layout: BSNH_OUT(d.seqKV, d.kvNumHeads, d.headSize) },
      { t: kc.device(v!, st), layout: BSNH_OUT(d.seqKV, d.kvNumHeads, d.vHeadSize) },
      pk,
      pv,
    );
    const { total } = kv;
    const out = allocAct(kc, [d.batch, d.seqQ, d.numHeads * d.vHeadSize]);
    const keyLengths = lengths ? kc.uploadHostData(4, inputs) : undefined;
    const target: [number, number, number, number] = [d.batch, d.numHeads, d.seqQ, total];
    flashAttention(kc.gpu, kc.rec, {
      ...d,
      seqKV: total,
      scale: scaleAttr(node, d.headSize),
      q: Q.buffer,
      qLayout: BSNH_OUT(d.seqQ, d.numHeads, d.headSize),
      k: kv.K.t.buffer,
      kLayout: kv.K.layout,
      v: kv.V.t.buffer,
      vLayout: kv.V.layout,
      out: out.buffer,
      outLayout: BSNH_OUT(d.seqQ, d.numHeads, d.vHeadSize),
      // Bottom-right aligned over past + current keys: query i is token P + i of the sequence.
      causalOffset: causalAttr(node) ? total - d.seqQ : undefined,
      bias: bias ? broadcastBiasArg("mhafuse.Attention (webgpu)", kc.device(bias, "f32"), target) : undefined,
      keyLengths,
      ...attentionPrecision(kc),
    });
    return [out, ...kv.presents(node.outputs[1] || node.outputs[2])];
  },
};

/** The elements of a strided view of `src` copied into a new dense buffer of `dims`. */
function denseCopy(
  kc: GpuKernelContext,
  src: DeviceValue,
  offset: number,
  strides: number[],
  dims: number[],
  label: string,
): DeviceValue {
  const out = kc.alloc(dims, "float32", src.f16);
  stridedCopy(
    kc.gpu,
    kc.rec,
    dims,
    src.buffer,
    { offset, strides },
    out.buffer,
    {
      offset: 0,
      strides: contiguousStrides(dims),
    },
    label,
    src.f16,
  );
  return out;
}

/** A strided head view copied into a dense [B, S, N, H] buffer (optionally plus a per-column bias row). */
function denseBsnh(
  kc: GpuKernelContext,
  src: DeviceValue,
  layout: StridedLayout,
  d: { B: number; S: number; N: number; H: number },
  bias?: { buffer: DeviceValue; at: number },
): DeviceValue {
  const dims = [d.B, d.S, d.N, d.H];
  const strides = [layout.batchStride, layout.seqStride, layout.headStride, 1];
  const copy = denseCopy(kc, src, layout.offset, strides, dims, "webgpu.Attention (view)");
  if (!bias) return copy;
  const width = d.N * d.H;
  const f16 = bias.buffer.f16;
  const row = kc.alloc([width], "float32", f16);
  stridedCopy(
    kc.gpu,
    kc.rec,
    [width],
    bias.buffer.buffer,
    { offset: bias.at, strides: [1] },
    row.buffer,
    { offset: 0, strides: [1] },
    "webgpu.Attention (bias)",
    f16,
  );
  const out = kc.alloc(dims, "float32", copy.f16);
  binary(kc.gpu, kc.rec, "Add", copy.reshape([d.B, d.S, width]), row, out.reshape([d.B, d.S, width]));
  kc.scratch(copy);
  kc.scratch(row);
  return out;
}

/** A head view copied into a dense [B, N, S, H] buffer (present_key / present_value). */
function denseBnsh(
  kc: GpuKernelContext,
  src: DeviceValue,
  layout: StridedLayout,
  d: { B: number; S: number; N: number; H: number },
): DeviceValue {
  const strides = [layout.batchStride, layout.headStride, layout.seqStride, 1];
  return denseCopy(kc, src, layout.offset, strides, [d.B, d.N, d.S, d.H], "webgpu.Attention (present)");
}

const BSNH_OUT = (S: number, N: number, H: number): StridedLayout => ({
  offset: 0,
  batchStride: S * N * H,
  headStride: H,
  seqStride: N * H,
});

/**
 * com.microsoft.MultiHeadAttention without a KV cache: every input form (separate, BNSH K/V, packed KV,
 * packed QKV), the Q|K|V bias (added into dense copies, as the reference does), key_padding_mask (host
 * ints → the additive mask_filter_value bias of onnxruntime, built on the host) plus attention_bias (summed
 * on the device), unidirectional, and the present_key / present_value outputs.
 */
export const multiHeadAttentionDef: GpuKernelDef = {
  opType: "MultiHeadAttention",
  domain: "com.microsoft",
  types: ["float32"],
  // fp16 mode: the Q|K|V bias initializer as f16 once at prepare (not cast every run).
  f16Weights: [3],
  hostInputs: [4],
  accepts(node, _o, inputs, gpu) {
    const [query, key, value, bias, , attnBias] = inputs;
    if (!query) return "missing query";
    if (inputs.slice(6).some((t) => t)) return "past state (the reference rejects it)";
    if (node.outputs[3]) return "the qk output";
    if (![query, key, value, bias, attnBias].every(isF32)) return "a non-float32 input";
    const g = mhaGeometry(node, asShapeTensor(query)!, asShapeTensor(key), asShapeTensor(value));
    return fitsWorkgroupMemory(gpu.gpu.limits.maxComputeWorkgroupStorageSize, {
      ...g,
      kvNumHeads: g.numHeads,
    });
  },
  run(kc, inputs) {
    const node = kc.node;
    const [query, key, value, bias, mask, attnBias] = inputs;
    const g = mhaGeometry(node, asShapeTensor(query)!, asShapeTensor(key), asShapeTensor(value));
    const dev = [query, key, value].map((t) => (t ? kc.device(t, storageOf(kc)) : undefined));
    const N = g.numHeads;
    const dq = N * g.headSize;
    const dv = N * g.vHeadSize;
    let q = { t: dev[g.q.input]!, layout: g.q.layout };
    let k = { t: dev[g.k.input]!, layout: g.k.layout };
    let v = { t: dev[g.v.input]!, layout: g.v.layout };
    const scratch: DeviceValue[] = [];
    if (bias) {
      if (bias.dims.length !== 1 || bias.dims[0] !== 2 * dq + dv)
        throw new OpError(
          node,
          `bias must have shape [${2 * dq + dv}] (Q|K|V), got [${bias.dims.join(",")}]`,
        );
      const b = kc.device(bias, storageOf(kc));
      const biased = (h: typeof q, S: number, H: number, at: number) => {
        const t = denseBsnh(kc, h.t, h.layout, { B: g.batch, S, N, H }, { buffer: b, at });
        scratch.push(t);
        return { t, layout: BSNH_OUT(S, N, H) };
      };
      q = biased(q, g.seqQ, g.headSize, 0);
      if (!g.kvBnsh) {
        k = biased(k, g.seqKV, g.headSize, dq);
        v = biased(v, g.seqKV, g.vHeadSize, 2 * dq);
      }
    }
    const target: [number, number, number, number] = [g.batch, N, g.seqQ, g.seqKV];
    let biasT: DeviceValue | undefined;
    if (mask) {
      const m = maskBias(
        node,
        mask as Tensor,
        g.batch,
        g.seqQ,
        g.seqKV,
        maskFilterValue(node),
        "key_padding_mask",
      );
      biasT = kc.device(new HostTensor("float32", m.data, m.dims), "f32");
    }
    if (attnBias) {
      checkAttentionBias(node, attnBias, target);
      const ab = kc.device(attnBias, "f32");
      if (biasT) {
        const sum = kc.alloc(broadcastShape("Add", biasT.dims, ab.dims), "float32", false);
        binary(kc.gpu, kc.rec, "Add", biasT, ab, sum);
        scratch.push(sum);
        biasT = sum;
      } else biasT = ab;
    }
    const out = allocAct(kc, [g.batch, g.seqQ, dv]);
    flashAttention(kc.gpu, kc.rec, {
      batch: g.batch,
      numHeads: N,
      kvNumHeads: N,
      seqQ: g.seqQ,
      seqKV: g.seqKV,
      headSize: g.headSize,
      vHeadSize: g.vHeadSize,
      scale: scaleAttr(node, g.headSize),
      q: q.t.buffer,
      qLayout: q.layout,
      k: k.t.buffer,
      kLayout: k.layout,
      v: v.t.buffer,
      vLayout: v.layout,
      out: out.buffer,
      outLayout: BSNH_OUT(g.seqQ, N, g.vHeadSize),
      causalOffset: mhaCausalOffset(node, g),
      bias: biasT ? broadcastBiasArg(OP_MHA, biasT, target) : undefined,
      ...attentionPrecision(kc),
    });
    const results: (DeviceValue | undefined)[] = [out];
    if (node.outputs[1] || node.outputs[2]) {
      // Without a past, the present cache is this step's (biased) K and V as [B, N, L, H].
      results.push(
        denseBnsh(kc, k.t, k.layout, { B: g.batch, S: g.seqKV, N, H: g.headSize }),
        denseBnsh(kc, v.t, v.layout, { B: g.batch, S: g.seqKV, N, H: g.vHeadSize }),
      );
    }
    for (const t of scratch) kc.scratch(t);
    return results as DeviceValue[];
  },
};

const OP_MHA = "com.microsoft.MultiHeadAttention (webgpu)";

/** past [B, Nkv, P, H] ++ the current view [B, Nkv, S, H] along the sequence: a dense present buffer. */
function presentOf(
  kc: GpuKernelContext,
  past: DeviceValue,
  cur: DeviceValue,
  layout: StridedLayout,
  d: { B: number; N: number; P: number; S: number; H: number },
): DeviceValue {
  const dims = [d.B, d.N, d.P + d.S, d.H];
  const f16 = cur.f16;
  const out = kc.alloc(dims, "float32", f16);
  const st = contiguousStrides(dims);
  const pastDims = [d.B, d.N, d.P, d.H];
  stridedCopy(
    kc.gpu,
    kc.rec,
    pastDims,
    past.buffer,
    { offset: 0, strides: contiguousStrides(pastDims) },
    out.buffer,
    {
      offset: 0,
      strides: st,
    },
    "webgpu.Attention (past)",
    f16,
  );
  stridedCopy(
    kc.gpu,
    kc.rec,
    [d.B, d.N, d.S, d.H],
    cur.buffer,
    { offset: layout.offset, strides: [layout.batchStride, layout.headStride, layout.seqStride, 1] },
    out.buffer,
    { offset: d.P * st[2]!, strides: st },
    "webgpu.Attention (present)",
    f16,
  );
  return out;
}

/** past_key / past_value must be [B, Nkv, P, size] (the op contract's check, on dims); returns P. */
function pastOf(node: Node, d: AttentionDims, past: RunValue, size: number, what: string): number {
  const t = asShapeTensor(past)!;
  return pastLength(node, t, d.batch, d.kvNumHeads, size, t.type, what);
}

const bnsh = (N: number, S: number, H: number): StridedLayout => ({
  offset: 0,
  batchStride: N * S * H,
  headStride: S * H,
  seqStride: H,
});

interface KvView {
  t: DeviceValue;
  layout: StridedLayout;
}

/**
 * K and V as the flash kernel reads them over past + current keys: with past_key / past_value, past ++
 * current on the device into dense [B, Nkv, P+S, H] buffers (the present outputs: one copy of the cache per
 * step); without, the current views as they are. `presents(wanted)` hands out present_key / present_value
 * (without a past: the current K/V copied to [B, Nkv, S, H]) when they are wanted and otherwise returns the
 * appended buffers to the pool.
 */
function withPast(
  kc: GpuKernelContext,
  d: AttentionDims,
  K: KvView,
  V: KvView,
  pk: RunValue | undefined,
  pv: RunValue | undefined,
): { K: KvView; V: KvView; past: number; total: number; presents(wanted: unknown): DeviceValue[] } {
  const node = kc.node;
  const past = pk ? pastOf(node, d, pk, d.headSize, "past_key") : 0;
  const total = past + d.seqKV;
  if (pk && pv) {
    pastOf(node, d, pv, d.vHeadSize, "past_value");
    const p = { B: d.batch, N: d.kvNumHeads, P: past, S: d.seqKV };
    K = {
      t: presentOf(kc, kc.device(pk, storageOf(kc)), K.t, K.layout, { ...p, H: d.headSize }),
      layout: bnsh(d.kvNumHeads, total, d.headSize),
    };
    V = {
      t: presentOf(kc, kc.device(pv, storageOf(kc)), V.t, V.layout, { ...p, H: d.vHeadSize }),
      layout: bnsh(d.kvNumHeads, total, d.vHeadSize),
    };
  }
  const appended = !!(pk && pv);
  return {
    K,
    V,
    past,
    total,
    presents(wanted) {
      if (!wanted) {
        if (appended) {
          kc.scratch(K.t);
          kc.scratch(V.t);
        }
        return [];
      }
      if (appended) return [K.t, V.t];
      const s = { B: d.batch, S: total, N: d.kvNumHeads };
      return [
        denseBnsh(kc, K.t, K.layout, { ...s, H: d.headSize }),
        denseBnsh(kc, V.t, V.layout, { ...s, H: d.vHeadSize }),
      ];
    },
  };
}

/**
 * ONNX Attention (opset 23; 24's nonpad_kv_seqlen): 3-D or 4-D Q/K/V, GQA, is_causal offset by the past
 * length, past_key/past_value concatenated on the device into present_key/present_value, attn_mask boolean
 * (made additive on the host) or float (on the device when it spans every key). Declined: softcap (no GPU
 * kernel has it), qk_matmul_output_mode ≠ 0, a float mask shorter than past + current keys.
 */
export const attention23Def: GpuKernelDef = {
  opType: "Attention",
  since: 23,
  types: ["float32"],
  hostInputs: [6],
  accepts(node, opset, inputs, gpu) {
    const [q, k, v, mask, pk, pv] = inputs;
    if (!q || !k || !v) return "missing Q, K or V";
    if (![q, k, v, pk, pv].every(isF32)) return "a non-float32 input";
    if (attrInt(node, "qk_matmul_output_mode", 0) !== 0 || node.outputs[3]) return "qk_matmul_output";
    if (attrFloat(node, "softcap", 0) > 0) return "softcap";
    if (!pk !== !pv) return "past_key without past_value";
    const g = attention23Geometry(node, asShapeTensor(q)!, asShapeTensor(k)!, asShapeTensor(v)!);
    const past = pk ? pastOf(node, g, pk, g.headSize, "past_key") : 0;
    if (mask && mask.type !== "bool" && (mask.type !== "float32" || mask.dims.at(-1) !== past + g.seqKV))
      return "a float mask that does not span every key";
    if (inputs[6] && opset >= 24 && attrInt(node, "is_causal", 0) !== 0 && !pk)
      return "is_causal with nonpad_kv_seqlen and no past";
    return fitsWorkgroupMemory(gpu.gpu.limits.maxComputeWorkgroupStorageSize, g);
  },
  run(kc, inputs) {
    const node = kc.node;
    const [q, k, v, mask, pk, pv, nonpad] = inputs;
    const g = attention23Geometry(node, asShapeTensor(q)!, asShapeTensor(k)!, asShapeTensor(v)!);
    const st = storageOf(kc);
    const Q = kc.device(q!, st);
    const kv = withPast(
      kc,
      g,
      { t: kc.device(k!, st), layout: g.k },
      { t: kc.device(v!, st), layout: g.v },
      pk,
      pv,
    );
    const { past, total } = kv;
    const target: [number, number, number, number] = [g.batch, g.numHeads, g.seqQ, total];
    let bias: DeviceValue | undefined;
    if (mask) {
      if (mask.type === "bool") {
        const m = additiveMask(node, mask as Tensor, total);
        bias = kc.device(new HostTensor("float32", m.data, m.dims), "f32");
      } else bias = kc.device(mask, "f32");
    }
    const keyLengths =
      nonpad && kc.opset >= 24
        ? kc.uploadInt32(keyLengthsOf(node, nonpad as Tensor, g.batch, total, "nonpad_kv_seqlen"))
        : undefined;
    const yDims = g.threeD
      ? [g.batch, g.seqQ, g.numHeads * g.vHeadSize]
      : [g.batch, g.numHeads, g.seqQ, g.vHeadSize];
    const out = allocAct(kc, yDims);
    flashAttention(kc.gpu, kc.rec, {
      ...g,
      seqKV: total,
      scale: scaleAttr(node, g.headSize),
      q: Q.buffer,
      qLayout: g.q,
      k: kv.K.t.buffer,
      kLayout: kv.K.layout,
      v: kv.V.t.buffer,
      vLayout: kv.V.layout,
      out: out.buffer,
      outLayout: g.threeD ? BSNH_OUT(g.seqQ, g.numHeads, g.vHeadSize) : bnsh(g.numHeads, g.seqQ, g.vHeadSize),
      causalOffset: attrInt(node, "is_causal", 0) !== 0 ? past : undefined,
      bias: bias ? broadcastBiasArg("Attention-23 (webgpu)", bias, target) : undefined,
      keyLengths,
      ...attentionPrecision(kc),
    });
    // present_key / present_value: past ++ current, or (no past) the current K/V as [B, Nkv, S, H].
    return [out, ...kv.presents(node.outputs[1] || node.outputs[2])];
  },
};

/**
 * com.microsoft Attention without past state: the Q|K|V projection as one SGEMM with the bias in its
 * epilogue, then the flash kernel on three strided views of the [B, S, Q|K|V] result (no split copies);
 * mask_index forms become onnxruntime's additive mask on the host, attention_bias is added on the device.
 */
export const contribAttentionDef: GpuKernelDef = {
  opType: "Attention",
  domain: "com.microsoft",
  types: ["float32"],
  // fp16 mode: the weights and the bias as f16 once at prepare.
  f16Weights: [1, 2],
  hostInputs: [3],
  accepts(node, _o, inputs, gpu) {
    const [input, weights, bias, , past, attnBias, pastSeq] = inputs;
    if (!input || !weights) return "missing input or weights";
    if (past || pastSeq || node.outputs[1]) return "past / present state (the reference rejects it)";
    if (attrInt(node, "do_rotary", 0) !== 0) return "do_rotary";
    if (![input, weights, bias, attnBias].every(isF32)) return "a non-float32 input";
    const g = contribAttentionGeometry(node, input, weights, bias);
    return fitsWorkgroupMemory(gpu.gpu.limits.maxComputeWorkgroupStorageSize, {
      ...g,
      kvNumHeads: g.numHeads,
      seqQ: g.seq,
      seqKV: g.seq,
    });
  },
  run(kc, inputs) {
    const node = kc.node;
    const [input, weights, bias, mask, , attnBias] = inputs;
    const g = contribAttentionGeometry(node, input!, weights!, bias);
    const st = storageOf(kc);
    const X = kc.device(input!, st);
    const w = isDevice(weights) ? undefined : kc.weight(weights as Tensor, false);
    const W = w && w.f16 === half(kc) ? w : kc.device(weights!, st);
    const M = g.batch * g.seq;
    const qkv = allocAct(kc, [g.batch, g.seq, g.width]);
    gemm(kc.gpu, kc.rec, {
      a: { buffer: X.buffer, dims: [M, g.inHidden] },
      b: { buffer: W.buffer, dims: [g.inHidden, g.width] },
      bias: bias ? { buffer: kc.device(bias, st).buffer, dims: [g.width] } : undefined,
      out: { buffer: qkv.buffer, dims: [M, g.width] },
      ...gemmPrecisionOf(kc),
    });
    const N = g.numHeads;
    const target: [number, number, number, number] = [g.batch, N, g.seq, g.seq];
    const scratch: DeviceValue[] = [qkv];
    let biasT: DeviceValue | undefined;
    if (mask) {
      const m = maskBias(node, mask as Tensor, g.batch, g.seq, g.seq, maskFilterValue(node), "mask_index");
      biasT = kc.device(new HostTensor("float32", m.data, m.dims), "f32");
    }
    if (attnBias) {
      checkAttentionBias(node, attnBias, target);
      const ab = kc.device(attnBias, "f32");
      if (biasT) {
        const sum = kc.alloc(broadcastShape("Add", biasT.dims, ab.dims), "float32", false);
        binary(kc.gpu, kc.rec, "Add", biasT, ab, sum);
        scratch.push(sum);
        biasT = sum;
      } else biasT = ab;
    }
    const view = (offset: number, H: number): StridedLayout => ({
      offset,
      batchStride: g.seq * g.width,
      headStride: H,
      seqStride: g.width,
    });
    const out = allocAct(kc, [g.batch, g.seq, g.dv]);
    flashAttention(kc.gpu, kc.rec, {
      batch: g.batch,
      numHeads: N,
      kvNumHeads: N,
      seqQ: g.seq,
      seqKV: g.seq,
      headSize: g.headSize,
      vHeadSize: g.vHeadSize,
      scale: scaleAttr(node, g.headSize),
      q: qkv.buffer,
      qLayout: view(0, g.headSize),
      k: qkv.buffer,
      kLayout: view(g.dq, g.headSize),
      v: qkv.buffer,
      vLayout: view(g.dq + g.dk, g.vHeadSize),
      out: out.buffer,
      outLayout: BSNH_OUT(g.seq, N, g.vHeadSize),
      causalOffset: attrInt(node, "unidirectional", 0) ? 0 : undefined,
      bias: biasT ? broadcastBiasArg("com.microsoft.Attention (webgpu)", biasT, target) : undefined,
      ...attentionPrecision(kc),
    });
    for (const t of scratch) kc.scratch(t);
    return [out];
  },
};

/**
 * com.microsoft.GroupQueryAttention: with do_rotary, Q and the new K rows are rotated on the device at each
 * sequence's positions (../kernels/rotary.ts); the present caches are built on the device (cleared, each
 * sequence's past rows and then its new rows at its own past length, from seqlens_k), and the flash kernel
 * runs on them with per-batch key lengths and a per-batch causal offset (each row sees its past and the new
 * rows up to itself). Declined: softcap, local_window_size, smooth_softmax.
 */
export const groupQueryAttentionDef: GpuKernelDef = {
  opType: "GroupQueryAttention",
  domain: "com.microsoft",
  types: ["float32"],
  hostInputs: [5, 6],
  accepts(node, _o, inputs, gpu) {
    const [q, k, v, pk, pv] = inputs;
    if (!q || ![q, k, v, pk, pv].every(isF32)) return "a non-float32 input";
    if (attrInt(node, "do_rotary", 0) !== 0) {
      const [cos, sin] = [inputs[7], inputs[8]];
      if (!cos || !sin || !isF32(cos) || !isF32(sin)) return "do_rotary without float32 cos/sin caches";
      if (cos.dims.length !== 2 || cos.dims.join() !== sin.dims.join())
        return "cos/sin caches not [positions, half]";
    }
    if (attrFloat(node, "softcap", 0) !== 0) return "softcap";
    if (attrInt(node, "local_window_size", -1) > 0) return "local_window_size";
    if (attrInt(node, "smooth_softmax", 0) !== 0) return "smooth_softmax";
    const seqlens = inputs[5];
    if (!seqlens || !inputs[6]) return "missing seqlens_k or total_sequence_length";
    const g = gqaGeometry(node, inputs, seqlens.size);
    return fitsWorkgroupMemory(gpu.gpu.limits.maxComputeWorkgroupStorageSize, {
      batch: g.B,
      numHeads: g.N,
      kvNumHeads: g.Nkv,
      seqQ: g.S,
      seqKV: g.S + g.P,
      headSize: g.H,
      vHeadSize: g.H,
    });
  },
  run(kc, inputs) {
    const node = kc.node;
    const [query, key, value, pastKey, pastValue] = inputs;
    const seqlensK = (inputs[5] as Tensor).toNumbers();
    const total = (inputs[6] as Tensor).getNumber(0);
    const g = gqaGeometry(node, inputs, seqlensK.length);
    const { pastLens, present } = gqaPastLengths(node, g, seqlensK, total);
    const { B, S, D, N, Nkv, H, P } = g;
    const st = storageOf(kc);
    const f16 = half(kc);
    let Q = kc.device(query!, st);
    let qLayout: StridedLayout = { offset: 0, batchStride: S * D, headStride: H, seqStride: D };
    // New K / V rows: inside the packed query (columns N·H.. and (N + Nkv)·H..) or their own [B, S, Nkv·H].
    const src = (t: RunValue | undefined, at: number) =>
      g.packed
        ? { buf: Q, offset: at, batchStride: S * D, seqStride: D }
        : { buf: kc.device(t!, st), offset: 0, batchStride: S * Nkv * H, seqStride: Nkv * H };
    let kNew = src(key, N * H);
    const vNew = src(value, (N + Nkv) * H);
    const scratch: DeviceValue[] = [];
    if (attrInt(node, "do_rotary", 0) !== 0) {
      // The caches stay f32 (the rotation is computed in f32 either way).
      const cos = kc.device(inputs[7]!, "f32");
      const rotHalf = cos.dims[1]!;
      if (2 * rotHalf > H) throw new OpError(node, `rotary half ${rotHalf} exceeds half the head size ${H}`);
      const last = Math.max(...pastLens) + S - 1;
      if (last >= cos.dims[0]!) throw new OpError(node, `position ${last} is outside the rotary cache`);
      const common = {
        B,
        S,
        H,
        cos: cos.buffer,
        sin: kc.device(inputs[8]!, "f32").buffer,
        half: rotHalf,
        positions: kc.uploadInt32(Int32Array.from(pastLens)),
        interleaved: attrInt(node, "rotary_interleaved", 0) !== 0,
        f16,
      };
      const qr = allocAct(kc, [B, S, N, H]);
      rotary(kc.gpu, kc.rec, { ...common, x: Q.buffer, layout: qLayout, heads: N, out: qr.buffer });
      const kr = allocAct(kc, [B, S, Nkv, H]);
      rotary(kc.gpu, kc.rec, {
        ...common,
        x: kNew.buf.buffer,
        layout: {
          offset: kNew.offset,
          batchStride: kNew.batchStride,
          seqStride: kNew.seqStride,
          headStride: H,
        },
        heads: Nkv,
        out: kr.buffer,
      });
      scratch.push(qr, kr);
      Q = qr;
      qLayout = BSNH_OUT(S, N, H);
      kNew = { buf: kr, offset: 0, batchStride: S * Nkv * H, seqStride: Nkv * H };
    }
    const presentDims = [B, Nkv, present, H];
    const strides = contiguousStrides(presentDims);
    const cache = (fresh: typeof kNew, past: RunValue | undefined): DeviceValue => {
      const out = allocAct(kc, presentDims);
      // The reference leaves the cache past each sequence's rows zero.
      kc.rec.clear(out.buffer, 0, out.bytes);
      const pastBuf = past ? kc.device(past, st) : undefined;
      for (let b = 0; b < B; b++) {
        const at = pastLens[b]!;
        if (pastBuf && at > 0)
          stridedCopy(
            kc.gpu,
            kc.rec,
            [Nkv, at, H],
            pastBuf.buffer,
            { offset: b * Nkv * P * H, strides: [P * H, H, 1] },
            out.buffer,
            { offset: b * strides[0]!, strides: strides.slice(1) },
            "webgpu.GroupQueryAttention (past)",
            f16,
          );
        stridedCopy(
          kc.gpu,
          kc.rec,
          [Nkv, S, H],
          fresh.buf.buffer,
          { offset: fresh.offset + b * fresh.batchStride, strides: [H, fresh.seqStride, 1] },
          out.buffer,
          { offset: b * strides[0]! + at * H, strides: strides.slice(1) },
          "webgpu.GroupQueryAttention (new rows)",
          f16,
        );
      }
      return out;
    };
    const presentK = cache(kNew, pastKey);
    const presentV = cache(vNew, pastValue);
    const out = allocAct(kc, [B, S, N * H]);
    flashAttention(kc.gpu, kc.rec, {
      batch: B,
      numHeads: N,
      kvNumHeads: Nkv,
      seqQ: S,
      seqKV: present,
      headSize: H,
      vHeadSize: H,
      scale: scaleAttr(node, H),
      q: Q.buffer,
      qLayout,
      k: presentK.buffer,
      kLayout: bnsh(Nkv, present, H),
      v: presentV.buffer,
      vLayout: bnsh(Nkv, present, H),
      out: out.buffer,
      outLayout: BSNH_OUT(S, N, H),
      keyLengths: kc.uploadInt32(Int32Array.from(pastLens, (p) => p + S)),
      causalPerBatch: true,
      ...attentionPrecision(kc),
    });
    for (const t of scratch) kc.scratch(t);
    return [out, presentK, presentV];
  },
};
