/**
 * Attention rows whose inputs hold NaN or ±Infinity, computed the way the unfused graph (MatMul, Softmax,
 * MatMul) computes them, so fusion never turns a NaN into a number. The fast kernels skip keys with
 * probability 0 and treat a block of NaN scores like masked keys, which is right for finite inputs only;
 * rows are routed here when a cheap scan finds a non-finite input (O(keys + rows) against the kernel's
 * O(rows · keys)). Semantics, per query row i with allowed keys j < end(i):
 *  - a NaN score among the allowed keys (NaN in q, k or the bias) makes the whole row NaN, like Softmax;
 *  - probabilities are exp(s − max) / Σ, so +Inf scores give NaN as in Softmax, and every allowed key's
 *    p·v enters the sum, p = 0 included (0 · ∞ = NaN, as in MatMul);
 *  - keys the row may not read (padding, causal future) have p = 0 in the unfused graph, whose MatMul still
 *    multiplies their V: a non-finite V value there makes that output column NaN;
 *  - a row with no allowed key, or whose allowed scores are all −Inf, stays zeros (the kernels' guard).
 */
import type { AttentionArgs } from "../../ops/attention-args.js";

function finiteRange(x: Float32Array, start: number, count: number): boolean {
  for (let i = start, e = start + count; i < e; i++) if (!Number.isFinite(x[i]!)) return false;
  return true;
}

/** Whether rows [rowStart, rowEnd) of (b, n) read only finite values (then the fast kernels are exact). */
export function attentionRowsFinite(
  a: AttentionArgs,
  b: number,
  n: number,
  rowStart: number,
  rowEnd: number,
): boolean {
  const { headSize: H, vHeadSize: HV } = a;
  const g = Math.floor(n / (a.numHeads / a.kvNumHeads));
  const qBase = a.qLayout.offset + b * a.qLayout.batchStride + n * a.qLayout.headStride;
  for (let i = rowStart; i < rowEnd; i++)
    if (!finiteRange(a.q, qBase + i * a.qLayout.seqStride, H)) return false;
  const kBase = a.kLayout.offset + b * a.kLayout.batchStride + g * a.kLayout.headStride;
  const vBase = a.vLayout.offset + b * a.vLayout.batchStride + g * a.vLayout.headStride;
  for (let j = 0; j < a.seqKV; j++) {
    if (!finiteRange(a.k, kBase + j * a.kLayout.seqStride, H)) return false;
    if (!finiteRange(a.v, vBase + j * a.vLayout.seqStride, HV)) return false;
  }
  const bias = a.bias;
  if (bias) {
    const base = bias.offset + b * bias.batchStride + n * bias.headStride;
    for (let i = rowStart; i < rowEnd; i++)
      if (!finiteRange(bias.data, base + i * bias.rowStride, a.seqKV)) return false;
  }
  return true;
}

/** Whether every (head, row) of batch b reads only finite values. */
export function attentionBatchFinite(a: AttentionArgs, b: number): boolean {
  for (let n = 0; n < a.numHeads; n++) if (!attentionRowsFinite(a, b, n, 0, a.seqQ)) return false;
  return true;
}

/** Rows [rowStart, rowEnd) of (b, n) with the unfused graph's NaN/Inf semantics (scalar, float64). */
export function attentionRowsNonFinite(
  a: AttentionArgs,
  b: number,
  n: number,
  rowStart: number,
  rowEnd: number,
): void {
  const { headSize: H, vHeadSize: HV, scale, q, k, v, out } = a;
  const g = Math.floor(n / (a.numHeads / a.kvNumHeads));
  const qBase = a.qLayout.offset + b * a.qLayout.batchStride + n * a.qLayout.headStride;
  const kBase = a.kLayout.offset + b * a.kLayout.batchStride + g * a.kLayout.headStride;
  const vBase = a.vLayout.offset + b * a.vLayout.batchStride + g * a.vLayout.headStride;
  const oBase = a.outLayout.offset + b * a.outLayout.batchStride + n * a.outLayout.headStride;
  const keyLen = Math.max(0, Math.min(a.seqKV, a.keyLengths ? a.keyLengths[b]! : a.seqKV));
  const queryLen = Math.min(a.seqQ, a.queryLengths ? a.queryLengths[b]! : a.seqQ);
  const bias = a.bias;
  const biasBase = bias ? bias.offset + b * bias.batchStride + n * bias.headStride : 0;
  const scores = new Float64Array(a.seqKV);
  const acc = new Float64Array(HV);
  for (let i = rowStart; i < rowEnd; i++) {
    const o = oBase + i * a.outLayout.seqStride;
    let end = i < queryLen ? keyLen : 0;
    if (a.causalOffset !== undefined) end = Math.max(0, Math.min(end, i + a.causalOffset + 1));
    if (end === 0) {
      out.fill(0, o, o + HV);
      continue;
    }
    const qo = qBase + i * a.qLayout.seqStride;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < end; j++) {
      const ko = kBase + j * a.kLayout.seqStride;
      let s = 0;
      for (let h = 0; h < H; h++) s += q[qo + h]! * scale * k[ko + h]!;
      if (bias) s += bias.data[biasBase + i * bias.rowStride + j]!;
      scores[j] = s;
      // NaN wins, like Math.max and like Softmax's reduction.
      max = Number.isNaN(s) || Number.isNaN(max) ? Number.NaN : Math.max(max, s);
    }
    if (Number.isNaN(max)) {
      out.fill(Number.NaN, o, o + HV);
      continue;
    }
    if (max === Number.NEGATIVE_INFINITY) {
      out.fill(0, o, o + HV);
      continue;
    }
    acc.fill(0);
    let sum = 0;
    for (let j = 0; j < end; j++) {
      const p = Math.exp(scores[j]! - max);
      sum += p;
      const vo = vBase + j * a.vLayout.seqStride;
      for (let c = 0; c < HV; c++) acc[c] += p * v[vo + c]!;
    }
    for (let c = 0; c < HV; c++) out[o + c] = acc[c]! / sum;
    // Keys this row may not read: probability 0, but the unfused MatMul still multiplies their V.
    for (let j = end; j < a.seqKV; j++) {
      const vo = vBase + j * a.vLayout.seqStride;
      for (let c = 0; c < HV; c++) if (!Number.isFinite(v[vo + c]!)) out[o + c] = Number.NaN;
    }
  }
}
