/**
 * The contract of the attention core every attention op ends in (QKVToContext, mhafuse.Attention, contrib
 * Attention, MultiHeadAttention, GroupQueryAttention, Attention-23): what one problem is, and a plain
 * reference that runs it. Backends run the same `AttentionArgs` with their fast kernels
 * (src/backends/cpu/attention-kernel.ts: flash-style, WebAssembly SIMD, worker threads).
 */

/** Where one tensor's (batch, head, seq) rows live in a flat array; the last (feature) axis is contiguous. */
export interface StridedLayout {
  offset: number;
  batchStride: number;
  headStride: number;
  seqStride: number;
}

/** An additive score bias indexed [batch, head, query row, key]; the key stride is 1, other strides 0 broadcast. */
export interface AttentionBias {
  data: Float32Array;
  offset: number;
  batchStride: number;
  headStride: number;
  rowStride: number;
}

/** The sizes of one attention problem: the one attention-dimensions type shared by ops and kernels. */
export interface AttentionDims {
  batch: number;
  numHeads: number;
  /** GQA: query head n reads kv head floor(n / (numHeads / kvNumHeads)). */
  kvNumHeads: number;
  seqQ: number;
  seqKV: number;
  headSize: number;
  vHeadSize: number;
}

export interface AttentionArgs extends AttentionDims {
  scale: number;
  q: Float32Array;
  qLayout: StridedLayout;
  k: Float32Array;
  kLayout: StridedLayout;
  v: Float32Array;
  vLayout: StridedLayout;
  out: Float32Array;
  outLayout: StridedLayout;
  /** Per batch: keys j >= len are ignored. */
  keyLengths?: ArrayLike<number>;
  /** Per batch: rows i >= len are written as zeros and skipped (TensorRT padded rows). */
  queryLengths?: ArrayLike<number>;
  /** When set: key j is allowed iff j <= i + causalOffset (0 = top-left aligned, seqKV - seqQ = bottom-right). */
  causalOffset?: number;
  bias?: AttentionBias;
  /** Attention-23 softcap: scores become cap·tanh(score / cap) before the bias is added (> 0 to apply). */
  softcap?: number;
}

const rowAt = (l: StridedLayout, b: number, n: number, i: number) =>
  l.offset + b * l.batchStride + n * l.headStride + i * l.seqStride;

/**
 * The oracle: one materialised row of scores at a time, softmax and P·V accumulated in float64. A row with
 * no allowed key (or every score -inf) is written as zeros, as the fast core does.
 */
export function referenceAttention(a: AttentionArgs): void {
  const group = a.numHeads / a.kvNumHeads;
  const scores = new Float64Array(a.seqKV);
  const acc = new Float64Array(a.vHeadSize);
  const cap = a.softcap !== undefined && a.softcap > 0 ? a.softcap : undefined;
  for (let b = 0; b < a.batch; b++) {
    const keyLen = a.keyLengths ? a.keyLengths[b]! : a.seqKV;
    const rows = a.queryLengths ? a.queryLengths[b]! : a.seqQ;
    for (let n = 0; n < a.numHeads; n++) {
      const kvHead = Math.floor(n / group);
      for (let i = 0; i < a.seqQ; i++) {
        acc.fill(0);
        if (i < rows) attentionRow(a, b, n, kvHead, i, keyLen, cap, scores, acc);
        const o = rowAt(a.outLayout, b, n, i);
        for (let h = 0; h < a.vHeadSize; h++) a.out[o + h] = acc[h]!;
      }
    }
  }
}

function attentionRow(
  a: AttentionArgs,
  b: number,
  n: number,
  kvHead: number,
  i: number,
  keyLen: number,
  cap: number | undefined,
  scores: Float64Array,
  acc: Float64Array,
): void {
  const q = rowAt(a.qLayout, b, n, i);
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < a.seqKV; j++) {
    if (j >= keyLen || (a.causalOffset !== undefined && j > i + a.causalOffset)) {
      scores[j] = Number.NEGATIVE_INFINITY;
      continue;
    }
    const k = rowAt(a.kLayout, b, kvHead, j);
    let dot = 0;
    for (let h = 0; h < a.headSize; h++) dot += a.q[q + h]! * a.k[k + h]!;
    let s = dot * a.scale;
    if (cap !== undefined) s = cap * Math.tanh(s / cap);
    const bias = a.bias;
    if (bias)
      s += bias.data[bias.offset + b * bias.batchStride + n * bias.headStride + i * bias.rowStride + j]!;
    scores[j] = s;
    if (s > max) max = s;
  }
  if (max === Number.NEGATIVE_INFINITY) return;
  let sum = 0;
  for (let j = 0; j < a.seqKV; j++) {
    const w = Math.exp(scores[j]! - max);
    if (w === 0) continue;
    sum += w;
    const v = rowAt(a.vLayout, b, kvHead, j);
    for (let h = 0; h < a.vHeadSize; h++) acc[h]! += w * a.v[v + h]!;
  }
  for (let h = 0; h < a.vHeadSize; h++) acc[h]! /= sum;
}
