/**
 * `mhafuse.Attention`: the general fused scaled-dot-product attention op that the fusion pass emits for
 * every attention block the packed QKV op cannot take (cross attention, causal, GQA, biased).
 *
 *   inputs   Q [B,Sq,Nq·H], K [B,Skv,Nkv·H], V [B,Skv,Nkv·Hv], bias? (additive, broadcastable to
 *            [B,Nq,Sq,T]), key_lengths? (int32 [B]: keys j >= len are ignored),
 *            past_key? [B,Nkv,P,H], past_value? [B,Nkv,P,Hv] (the KV cache; T = P + Skv keys in all)
 *   attrs    num_heads, kv_num_heads (default num_heads), scale (default 1/√H),
 *            causal (0/1: key j allowed iff j <= i + (T − Sq), i.e. bottom-right aligned: offset by P)
 *   outputs  Y [B,Sq,Nq·Hv]; a row whose allowed scores are all -inf is written as zeros.
 *            present_key? [B,Nkv,T,H], present_value? [B,Nkv,T,Hv]: past followed by this step's K/V
 *            (as ONNX Attention-23 and com.microsoft GroupQueryAttention return them).
 * GQA reads kv head ⌊n·Nkv/Nq⌋ for query head n: repeated heads are never materialised. A decoding step
 * (Sq = 1) costs O(T) per head: the core never forms [B,N,Sq,T] scores beyond one row at a time.
 *
 * This module also holds the pieces the imported attention ops (com.microsoft Attention/MultiHeadAttention,
 * ONNX Attention-23) share: every one of them reduces its inputs to an `AttentionProblem` — strided views
 * of Q, K and V plus masks — and runs it on the shared CPU attention core.
 */
import { OpError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import { floatToHalf } from "../ir/float16.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import {
  type AttentionBias,
  type AttentionDims,
  referenceAttention,
  type StridedLayout,
} from "./attention-args.js";
import { computeOf, type OpCompute, referenceCompute } from "./compute.js";
import {
  attrFloat,
  attrInt,
  hasAttr,
  type OpContext,
  type OpDef,
  registerOps,
  type TypeContext,
} from "./registry.js";

// ---- shared machinery for every attention op ---------------------------------------------------------

/** One of Q, K or V as the core reads it: a float32 buffer and where each (batch, head, position) row lives. */
export interface HeadView {
  data: Float32Array;
  layout: StridedLayout;
}

/** Everything an attention op reduces to before it runs. */
export interface AttentionProblem extends AttentionDims {
  scale: number;
  q: HeadView;
  k: HeadView;
  v: HeadView;
  bias?: AttentionBias;
  keyLengths?: ArrayLike<number>;
  /** Key j allowed iff j <= i + causalOffset. */
  causalOffset?: number;
  /** ONNX Attention-23 softcap: scores become softcap·tanh(score/softcap) before the mask is added. */
  softcap?: number;
}

/** Row layout of a [B, S, width] tensor whose heads occupy columns [offset, offset + heads·headSize). */
export function bsnhLayout(seq: number, width: number, headSize: number, offset = 0): StridedLayout {
  return { offset, batchStride: seq * width, headStride: headSize, seqStride: width };
}

/** Row layout of a [B, N, S, H] tensor. */
export function bnshLayout(heads: number, seq: number, headSize: number): StridedLayout {
  return { offset: 0, batchStride: heads * seq * headSize, headStride: seq * headSize, seqStride: headSize };
}

export const FLOAT_TYPES: readonly DType[] = ["float32", "float16"];

/** A float32 view of a float32 or float16 tensor (float16 is decoded; float32 is shared, not copied). */
export function floatData(node: Node, t: Tensor, what: string): Float32Array {
  if (t.type === "float32") return t.data as Float32Array;
  if (t.type === "float16") return Float32Array.from(t.toFloat64());
  throw new OpError(node, `${what} must be float32 or float16, got ${t.type}`);
}

/** Encodes float32 results in the op's output dtype. */
export function floatTensor(dtype: DType, data: Float32Array, dims: readonly number[]): Tensor {
  if (dtype === "float32") return new Tensor("float32", data, dims);
  const half = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) half[i] = floatToHalf(data[i]!);
  return new Tensor("float16", half, dims);
}

export function requireRank(
  node: Node,
  t: Pick<Tensor, "dims" | "rank">,
  ranks: readonly number[],
  what: string,
): void {
  if (!ranks.includes(t.rank)) {
    throw new OpError(
      node,
      `${what} must have rank ${ranks.join(" or ")}, got shape [${t.dims.join(",")}] (rank ${t.rank})`,
    );
  }
}

/**
 * An additive bias of any rank ≤ 4 broadcast (numpy rules) to [B, N, Sq, Skv], as the core reads it.
 * Broadcast axes get stride 0; a bias that is broadcast along keys is expanded, since the core reads keys
 * with unit stride.
 */
export function broadcastBias(
  node: Node,
  data: Float32Array,
  dims: readonly number[],
  target: readonly [number, number, number, number],
  what: string,
): AttentionBias {
  if (dims.length > 4) {
    throw new OpError(node, `${what} has rank ${dims.length}; it must broadcast to [B,N,Sq,Skv] (rank ≤ 4)`);
  }
  const d = [...Array<number>(4 - dims.length).fill(1), ...dims];
  for (let i = 0; i < 4; i++) {
    if (d[i] !== 1 && d[i] !== target[i]) {
      throw new OpError(
        node,
        `${what} of shape [${dims.join(",")}] does not broadcast to [B,N,Sq,Skv] = [${target.join(",")}]`,
      );
    }
  }
  const seqKV = target[3];
  let keyed = data;
  if (d[3] === 1 && seqKV !== 1) {
    const rows = d[0]! * d[1]! * d[2]!;
    keyed = new Float32Array(rows * seqKV);
    for (let r = 0; r < rows; r++) keyed.fill(data[r]!, r * seqKV, (r + 1) * seqKV);
    d[3] = seqKV;
  }
  const rowStride = d[3]!;
  return {
    data: keyed,
    offset: 0,
    rowStride: d[2] === 1 ? 0 : rowStride,
    headStride: d[1] === 1 ? 0 : d[2]! * rowStride,
    batchStride: d[0] === 1 ? 0 : d[1]! * d[2]! * rowStride,
  };
}

/** A bias on its way to the core: dense data with dims padded to rank 4, broadcast axes of size 1. */
export interface DenseBias {
  data: Float32Array;
  dims: [number, number, number, number];
}

/** Sum of several rank-4 biases, materialised at their broadcast shape (masks plus relative-position bias). */
export function sumBiases(node: Node, parts: readonly DenseBias[]): DenseBias | undefined {
  if (parts.length <= 1) return parts[0];
  const dims = [0, 1, 2, 3].map((a) => Math.max(...parts.map((p) => p.dims[a]))) as DenseBias["dims"];
  for (const p of parts) {
    if (p.dims.some((d, a) => d !== 1 && d !== dims[a])) {
      throw new OpError(
        node,
        `biases of shapes ${parts.map((q) => `[${q.dims}]`).join(" and ")} do not broadcast`,
      );
    }
  }
  const data = new Float32Array(dims[0] * dims[1] * dims[2] * dims[3]);
  for (const p of parts) {
    const [s0, s1, s2, s3] = [
      p.dims[0] === 1 ? 0 : p.dims[1] * p.dims[2] * p.dims[3],
      p.dims[1] === 1 ? 0 : p.dims[2] * p.dims[3],
      p.dims[2] === 1 ? 0 : p.dims[3],
      p.dims[3] === 1 ? 0 : 1,
    ];
    let o = 0;
    for (let a = 0; a < dims[0]; a++)
      for (let b = 0; b < dims[1]; b++)
        for (let c = 0; c < dims[2]; c++)
          for (let d = 0; d < dims[3]; d++) data[o++]! += p.data[a * s0 + b * s1 + c * s2 + d * s3]!;
  }
  return { data, dims };
}

/** Per-batch key lengths from an int32/int64 tensor of shape [B], each within [0, seqKV]. */
export function keyLengthsOf(node: Node, t: Tensor, batch: number, seqKV: number, what: string): Int32Array {
  if (t.type !== "int32" && t.type !== "int64") {
    throw new OpError(node, `${what} must be int32, got ${t.type}`);
  }
  if (t.rank !== 1 || t.dims[0] !== batch) {
    throw new OpError(node, `${what} must have shape [B] = [${batch}], got [${t.dims.join(",")}]`);
  }
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    const len = t.getNumber(b);
    if (!(len >= 0 && len <= seqKV)) {
      throw new OpError(node, `${what}[${b}] = ${len} is outside [0, ${seqKV}] (the key sequence length)`);
    }
    out[b] = len;
  }
  return out;
}

/**
 * Runs a problem on `compute`'s attention core (the reference's by default); the output is written with
 * `outLayout` into a buffer of B·Nq·Sq·Hv floats. Softcap (Attention-23 only) always runs on the reference:
 * no fast core has it.
 */
export function solveAttention(
  p: AttentionProblem,
  outLayout: StridedLayout,
  compute: OpCompute = referenceCompute,
): Float32Array {
  const out = compute.allocFloat32(p.batch * p.numHeads * p.seqQ * p.vHeadSize);
  const args = {
    batch: p.batch,
    numHeads: p.numHeads,
    kvNumHeads: p.kvNumHeads,
    seqQ: p.seqQ,
    seqKV: p.seqKV,
    headSize: p.headSize,
    vHeadSize: p.vHeadSize,
    scale: p.scale,
    q: p.q.data,
    qLayout: p.q.layout,
    k: p.k.data,
    kLayout: p.k.layout,
    v: p.v.data,
    vLayout: p.v.layout,
    out,
    outLayout,
    keyLengths: p.keyLengths,
    causalOffset: p.causalOffset,
    bias: p.bias,
  };
  if (p.softcap !== undefined && p.softcap > 0) referenceAttention({ ...args, softcap: p.softcap });
  else compute.attention(args);
  return out;
}

/** Copies one head view into a dense [B, N, S, H] buffer (present_key / present_value outputs). */
export function toBnsh(
  view: HeadView,
  batch: number,
  heads: number,
  seq: number,
  headSize: number,
): Float32Array {
  return appendToCache(undefined, 0, view, batch, heads, seq, headSize);
}

/**
 * The KV cache after one step: `past` ([B, N, P, H], dense) followed by the `seq` new rows of `view`, as a
 * dense [B, N, P + seq, H] buffer (`out` when given: a backend's pooled buffer). The attention core then
 * reads keys/values from it in place, so the cache is copied once per step and never re-laid out.
 */
export function appendToCache(
  past: Float32Array | undefined,
  pastLen: number,
  view: HeadView,
  batch: number,
  heads: number,
  seq: number,
  headSize: number,
  out: Float32Array = new Float32Array(batch * heads * (pastLen + seq) * headSize),
): Float32Array {
  const total = pastLen + seq;
  const { layout } = view;
  for (let b = 0; b < batch; b++) {
    for (let n = 0; n < heads; n++) {
      const bn = b * heads + n;
      let o = bn * total * headSize;
      if (past && pastLen > 0) {
        out.set(past.subarray(bn * pastLen * headSize, (bn + 1) * pastLen * headSize), o);
        o += pastLen * headSize;
      }
      for (let s = 0; s < seq; s++) {
        const r = layout.offset + b * layout.batchStride + n * layout.headStride + s * layout.seqStride;
        out.set(view.data.subarray(r, r + headSize), o);
        o += headSize;
      }
    }
  }
  return out;
}

/** Checks a past_key / past_value tensor: [B, N, P, size] of the op's float type; returns P. */
export function pastLength(
  node: Node,
  past: Pick<Tensor, "type" | "dims" | "rank">,
  batch: number,
  heads: number,
  size: number,
  dtype: DType,
  what: string,
): number {
  const [b, n, p, d] = past.dims;
  if (past.rank !== 4 || b !== batch || n !== heads || d !== size) {
    throw new OpError(node, `${what} must be [B, ${heads}, P, ${size}] (B=${batch}), got [${past.dims}]`);
  }
  if (past.type !== dtype) throw new OpError(node, `${what} must be ${dtype} like Q, got ${past.type}`);
  return p!;
}

/** Positive integer attribute, with a message naming it. */
export function positiveIntAttr(node: Node, name: string, fallback?: number): number {
  const v = attrInt(node, name, fallback);
  if (!(v > 0)) throw new OpError(node, `attribute '${name}' must be a positive integer, got ${v}`);
  return v;
}

/** `scale` attribute, where 0 or absence means 1/√headSize (the convention of every attention op). */
export function scaleAttr(node: Node, headSize: number): number {
  const s = hasAttr(node, "scale") ? attrFloat(node, "scale") : 0;
  return s === 0 ? 1 / Math.sqrt(headSize) : s;
}

/** Divides a symbolic dim by a constant when it is known. */
export function divDim(d: Dim | undefined, by: number): Dim {
  return typeof d === "number" ? d / by : null;
}

// ---- mhafuse.Attention ------------------------------------------------------------------------------

/**
 * The sizes of a mhafuse.Attention node from its Q, K, V dims alone (a device backend passes tensors whose
 * data it never reads here).
 */
export function attentionDimsOf(
  node: Node,
  q: Pick<Tensor, "type" | "dims" | "rank">,
  k: Pick<Tensor, "type" | "dims" | "rank">,
  v: Pick<Tensor, "type" | "dims" | "rank">,
): AttentionDims {
  requireRank(node, q, [3], "Q");
  requireRank(node, k, [3], "K");
  requireRank(node, v, [3], "V");
  for (const [t, what] of [
    [q, "Q"],
    [k, "K"],
    [v, "V"],
  ] as const) {
    if (!FLOAT_TYPES.includes(t.type))
      throw new OpError(node, `${what} must be float32 or float16, got ${t.type}`);
  }
  if (k.type !== q.type || v.type !== q.type) {
    throw new OpError(node, `Q, K and V must share one dtype, got ${q.type}, ${k.type}, ${v.type}`);
  }
  const [batch, seqQ, qHidden] = q.dims as [number, number, number];
  const [kBatch, seqKV, kHidden] = k.dims as [number, number, number];
  const [vBatch, vSeq, vHidden] = v.dims as [number, number, number];
  if (kBatch !== batch || vBatch !== batch) {
    throw new OpError(node, `batch sizes differ: Q ${batch}, K ${kBatch}, V ${vBatch}`);
  }
  if (vSeq !== seqKV) throw new OpError(node, `K and V sequence lengths differ: ${seqKV} vs ${vSeq}`);
  const numHeads = positiveIntAttr(node, "num_heads");
  const kvNumHeads = positiveIntAttr(node, "kv_num_heads", numHeads);
  if (numHeads % kvNumHeads !== 0) {
    throw new OpError(node, `num_heads ${numHeads} must be a multiple of kv_num_heads ${kvNumHeads}`);
  }
  if (qHidden % numHeads !== 0) {
    throw new OpError(node, `Q hidden size ${qHidden} is not divisible by num_heads ${numHeads}`);
  }
  const headSize = qHidden / numHeads;
  if (kHidden !== kvNumHeads * headSize) {
    throw new OpError(
      node,
      `K hidden size ${kHidden} must be kv_num_heads × head size = ${kvNumHeads} × ${headSize} = ${kvNumHeads * headSize}`,
    );
  }
  if (vHidden % kvNumHeads !== 0) {
    throw new OpError(node, `V hidden size ${vHidden} is not divisible by kv_num_heads ${kvNumHeads}`);
  }
  return { batch, seqQ, seqKV, numHeads, kvNumHeads, headSize, vHeadSize: vHidden / kvNumHeads };
}

/** The causal attribute (0/1). */
export function causalAttr(node: Node): boolean {
  const c = attrInt(node, "causal", 0);
  if (c !== 0 && c !== 1) throw new OpError(node, `attribute 'causal' must be 0 or 1, got ${c}`);
  return c === 1;
}

function runAttention(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[] {
  const node = ctx.node;
  const compute = computeOf(ctx);
  const [q, k, v, bias, keyLengths, pastKey, pastValue] = inputs;
  if (!q || !k || !v) throw new OpError(node, "inputs Q, K and V are required");
  if (!pastKey !== !pastValue) throw new OpError(node, "past_key and past_value must be given together");
  const s = attentionDimsOf(node, q, k, v);
  const kView = {
    data: floatData(node, k, "K"),
    layout: bsnhLayout(s.seqKV, s.kvNumHeads * s.headSize, s.headSize),
  };
  const vView = {
    data: floatData(node, v, "V"),
    layout: bsnhLayout(s.seqKV, s.kvNumHeads * s.vHeadSize, s.vHeadSize),
  };
  const past =
    pastKey && pastValue
      ? pastLength(node, pastKey, s.batch, s.kvNumHeads, s.headSize, q.type, "past_key")
      : 0;
  if (pastValue) pastLength(node, pastValue, s.batch, s.kvNumHeads, s.vHeadSize, q.type, "past_value");
  const wantPresent = !!(node.outputs[1] || node.outputs[2]);
  // With a cache (or when present_* is asked for) K/V are appended to the past into dense [B, Nkv, P+S, H]
  // buffers, which are both the present outputs and what the core reads: one copy of the cache per step.
  const cached = !!pastKey || wantPresent;
  const total = past + s.seqKV;
  const append = (t: Tensor | undefined, view: HeadView, size: number, what: string): HeadView => {
    const out = compute.allocFloat32(s.batch * s.kvNumHeads * total * size);
    const pastData = t ? floatData(node, t, what) : undefined;
    appendToCache(pastData, past, view, s.batch, s.kvNumHeads, s.seqKV, size, out);
    return { data: out, layout: bnshLayout(s.kvNumHeads, total, size) };
  };
  const kAll = cached ? append(pastKey, kView, s.headSize, "past_key") : kView;
  const vAll = cached ? append(pastValue, vView, s.vHeadSize, "past_value") : vView;
  const problem: AttentionProblem = {
    ...s,
    seqKV: total,
    scale: scaleAttr(node, s.headSize),
    q: { data: floatData(node, q, "Q"), layout: bsnhLayout(s.seqQ, s.numHeads * s.headSize, s.headSize) },
    k: kAll,
    v: vAll,
    // Bottom-right aligned over past + current keys: query i is token P + i of the sequence.
    causalOffset: causalAttr(node) ? total - s.seqQ : undefined,
  };
  if (bias) {
    problem.bias = broadcastBias(
      node,
      floatData(node, bias, "bias"),
      bias.dims,
      [s.batch, s.numHeads, s.seqQ, total],
      "bias",
    );
  }
  if (keyLengths) problem.keyLengths = keyLengthsOf(node, keyLengths, s.batch, total, "key_lengths");
  const outWidth = s.numHeads * s.vHeadSize;
  const out = solveAttention(problem, bsnhLayout(s.seqQ, outWidth, s.vHeadSize), ctx.compute);
  const results = [floatTensor(q.type, out, [s.batch, s.seqQ, outWidth])];
  if (wantPresent) {
    results.push(
      floatTensor(q.type, kAll.data, [s.batch, s.kvNumHeads, total, s.headSize]),
      floatTensor(q.type, vAll.data, [s.batch, s.kvNumHeads, total, s.vHeadSize]),
    );
  }
  return results;
}

function inferAttention(ctx: TypeContext): ValueType[] {
  const { node } = ctx;
  const [q, k, v, , , pastKey] = ctx.inputs;
  if (!q) throw new OpError(node, "input Q is required");
  const numHeads = positiveIntAttr(node, "num_heads");
  const kvNumHeads = positiveIntAttr(node, "kv_num_heads", numHeads);
  for (const [t, what] of [
    [q, "Q"],
    [k, "K"],
    [v, "V"],
  ] as const) {
    if (t?.shape && t.shape.length !== 3)
      throw new OpError(node, `${what} must have rank 3, got ${t.shape.length}`);
  }
  const vHidden = v?.shape?.[2];
  const outWidth = typeof vHidden === "number" ? (vHidden / kvNumHeads) * numHeads : null;
  const batch = q.shape?.[0] ?? null;
  const y: ValueType = { dtype: q.dtype, shape: [batch, q.shape?.[1] ?? null, outWidth] };
  if (node.outputs.length <= 1) return [y];
  const seqKV = k?.shape?.[1] ?? null;
  const total = pastKey ? addDims(pastKey.shape?.[2], seqKV) : seqKV;
  const present = (hidden: Dim | undefined): ValueType => ({
    dtype: q.dtype,
    shape: [batch, kvNumHeads, total, divDim(hidden, kvNumHeads)],
  });
  return [y, present(k?.shape?.[2]), present(vHidden)];
}

/** a + b for symbolic dims: known when both are numbers, or when one is 0. */
export function addDims(a: Dim | undefined, b: Dim | undefined): Dim {
  if (typeof a === "number" && typeof b === "number") return a + b;
  if (a === 0) return b ?? null;
  if (b === 0) return a ?? null;
  return null;
}

export const attentionOp: OpDef = {
  opType: "Attention",
  domain: "mhafuse",
  inferTypes: inferAttention,
  run: runAttention,
};

registerOps([attentionOp]);
