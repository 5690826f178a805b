/**
 * The general attention ops on the webgpu backend's flash kernel (../kernels/attention.ts, the generator the
 * packed-QKV op uses too): each op's own contract validates the node on its inputs' dims (no data read), the
 * node maps onto strided views of Q, K, V and the output, and one dispatch covers every (row tile, head,
 * batch) — causal offset, broadcast additive bias, key lengths and GQA (query head n reads kv head
 * n / (N / Nkv), no repeated K/V) are uniforms and flags of that one generator.
 *
 * Covered: mhafuse.Attention (float32; key_lengths read on the host). Declined (the CPU reference runs, as a
 * reported fallback): float16 tensors, and head sizes whose tiles exceed the device's workgroup memory.
 */
import type { Node } from "../../../ir/graph.js";
import type { Tensor } from "../../../ir/tensor.js";
import { attentionDimsOf, causalAttr, keyLengthsOf, scaleAttr } from "../../../ops/attention.js";
import type { AttentionDims } from "../../../ops/attention-args.js";
import { attentionSharedBytes, generalAttention } from "../kernels/attention.js";
import type { GpuKernelDef } from "./kernel-context.js";
import { asShapeTensor, type RunValue } from "./values.js";

const isF32 = (v: RunValue | undefined) => v === undefined || v.type === "float32";

/** Why the flash kernel cannot take these head sizes on this device (its smallest row tile), or undefined. */
function fitsWorkgroupMemory(limit: number, d: AttentionDims): string | undefined {
  const need = attentionSharedBytes({ H: d.headSize, HV: d.vHeadSize, Br: 32 });
  return need > limit
    ? `head size ${d.headSize}/${d.vHeadSize} needs ${need} B of workgroup memory`
    : undefined;
}

/** mhafuse.Attention: Q [B,Sq,N·H], K [B,Skv,Nkv·H], V [B,Skv,Nkv·Hv] read as BSNH; causal bottom-right. */
export const mhafuseAttentionDef: GpuKernelDef = {
  opType: "Attention",
  domain: "mhafuse",
  types: ["float32"],
  hostInputs: [4],
  accepts(node, _o, inputs, gpu) {
    const [q, k, v, bias] = inputs;
    if (!q || !k || !v) return "missing Q, K or V";
    if (![q, k, v, bias].every(isF32)) return "a non-float32 input";
    // The contract's own validation, on dims: a malformed node throws the CPU reference's error.
    const d = attentionDimsOf(node, asShapeTensor(q)!, asShapeTensor(k)!, asShapeTensor(v)!);
    return fitsWorkgroupMemory(gpu.gpu.limits.maxComputeWorkgroupStorageSize, d);
  },
  run(kc, inputs) {
    const node: Node = kc.node;
    const [q, k, v, bias, lengths] = inputs;
    const d = attentionDimsOf(node, asShapeTensor(q)!, asShapeTensor(k)!, asShapeTensor(v)!);
    const Q = kc.device(q!);
    const K = kc.device(k!);
    const V = kc.device(v!);
    const out = kc.alloc([d.batch, d.seqQ, d.numHeads * d.vHeadSize]);
    const view = (t: { buffer: GPUBuffer }, s: number, n: number, h: number) => ({
      buffer: t.buffer,
      dims: [d.batch, s, n, h],
    });
    const keyLengths = lengths
      ? kc.uploadInt32(keyLengthsOf(node, lengths as Tensor, d.batch, d.seqKV, "key_lengths"))
      : undefined;
    generalAttention(kc.gpu, kc.rec, {
      q: view(Q, d.seqQ, d.numHeads, d.headSize),
      k: view(K, d.seqKV, d.kvNumHeads, d.headSize),
      v: view(V, d.seqKV, d.kvNumHeads, d.vHeadSize),
      out: view(out, d.seqQ, d.numHeads, d.vHeadSize),
      layout: "BSNH",
      scale: scaleAttr(node, d.headSize),
      causalOffset: causalAttr(node) ? d.seqKV - d.seqQ : undefined,
      bias: bias ? kc.device(bias) : undefined,
      keyLengths,
    });
    return [out];
  },
};
