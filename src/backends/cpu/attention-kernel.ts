/**
 * The single-thread attention kernel behind the shared CPU attention core (see attention-core.ts).
 *
 * Flash-attention style: each query row walks its allowed keys in blocks, keeping a running maximum and
 * sum (online softmax), so no [B, N, Sq, Skv] score tensor is ever materialised. Masked keys (beyond the
 * key length or the causal limit) are never visited, and padded query rows are written as zeros without
 * any work. Inputs are addressed through strided layouts so packed QKV, BSNH and BNSH tensors can all be
 * read in place.
 */
import { assert } from "../../errors.js";

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

export interface AttentionArgs {
  batch: number;
  numHeads: number;
  /** GQA: query head n reads kv head floor(n / (numHeads / kvNumHeads)). */
  kvNumHeads: number;
  seqQ: number;
  seqKV: number;
  headSize: number;
  vHeadSize: number;
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
}

/** Keys per online-softmax block: big enough to amortise the rescale, small enough to stay in L1. */
const KEY_BLOCK = 64;

/** Per-thread scratch, sized for the largest head seen so far (reused across calls). */
export class Scratch {
  q = new Float64Array(64);
  acc = new Float64Array(64);
  scores = new Float64Array(KEY_BLOCK);
  fit(headSize: number, vHeadSize: number): this {
    if (this.q.length < headSize) this.q = new Float64Array(headSize);
    if (this.acc.length < vHeadSize) this.acc = new Float64Array(vHeadSize);
    return this;
  }
}
const sharedScratch = new Scratch();

export function validateAttentionArgs(a: AttentionArgs): void {
  assert(a.numHeads > 0 && a.kvNumHeads > 0, "attention: head counts must be positive");
  assert(a.numHeads % a.kvNumHeads === 0, "attention: numHeads must be a multiple of kvNumHeads");
  assert(a.headSize >= 0 && a.vHeadSize >= 0, "attention: negative head size");
  assert(!a.keyLengths || a.keyLengths.length >= a.batch, "attention: keyLengths shorter than batch");
  assert(!a.queryLengths || a.queryLengths.length >= a.batch, "attention: queryLengths shorter than batch");
}

/** Number of row blocks a (batch, head) pair is cut into for parallel work units. */
export function rowBlocks(seqQ: number, rowsPerUnit: number): number {
  return Math.max(1, Math.ceil(seqQ / rowsPerUnit));
}

/** Rows [rowStart, rowEnd) of one (batch, head): the kernel every entry point ends in. */
export function attentionRows(
  a: AttentionArgs,
  b: number,
  n: number,
  rowStart: number,
  rowEnd: number,
  scratch: Scratch = sharedScratch,
): void {
  const { headSize: H, vHeadSize: HV, scale, q, k, v, out } = a;
  const s = scratch.fit(H, HV);
  const qrow = s.q;
  const acc = s.acc;
  const scores = s.scores;
  const g = Math.floor(n / (a.numHeads / a.kvNumHeads));
  const qBase = a.qLayout.offset + b * a.qLayout.batchStride + n * a.qLayout.headStride;
  const kBase = a.kLayout.offset + b * a.kLayout.batchStride + g * a.kLayout.headStride;
  const vBase = a.vLayout.offset + b * a.vLayout.batchStride + g * a.vLayout.headStride;
  const oBase = a.outLayout.offset + b * a.outLayout.batchStride + n * a.outLayout.headStride;
  const qS = a.qLayout.seqStride;
  const kS = a.kLayout.seqStride;
  const vS = a.vLayout.seqStride;
  const oS = a.outLayout.seqStride;
  const keyLen = Math.min(a.seqKV, a.keyLengths ? a.keyLengths[b]! : a.seqKV);
  const queryLen = Math.min(a.seqQ, a.queryLengths ? a.queryLengths[b]! : a.seqQ);
  const bias = a.bias;
  const biasData = bias?.data;
  const biasBase = bias ? bias.offset + b * bias.batchStride + n * bias.headStride : 0;
  const causal = a.causalOffset;

  for (let i = rowStart; i < rowEnd; i++) {
    const o = oBase + i * oS;
    let keyEnd = i < queryLen ? keyLen : 0;
    if (causal !== undefined) keyEnd = Math.min(keyEnd, i + causal + 1);
    if (keyEnd <= 0) {
      out.fill(0, o, o + HV);
      continue;
    }
    const qo = qBase + i * qS;
    for (let h = 0; h < H; h++) qrow[h] = q[qo + h]! * scale;
    for (let h = 0; h < HV; h++) acc[h] = 0;
    const biasRow = biasBase + i * (bias ? bias.rowStride : 0);
    let max = Number.NEGATIVE_INFINITY;
    let sum = 0;

    for (let j0 = 0; j0 < keyEnd; j0 += KEY_BLOCK) {
      const j1 = Math.min(keyEnd, j0 + KEY_BLOCK);
      // Pass 1: scores of the block and their maximum.
      let blockMax = Number.NEGATIVE_INFINITY;
      for (let j = j0; j < j1; j++) {
        const ko = kBase + j * kS;
        let dot = 0;
        for (let h = 0; h < H; h++) dot += qrow[h]! * k[ko + h]!;
        if (biasData) dot += biasData[biasRow + j]!;
        scores[j - j0] = dot;
        if (dot > blockMax) blockMax = dot;
      }
      if (blockMax === Number.NEGATIVE_INFINITY) continue; // every key of the block is -inf: adds nothing
      // Rescale what was accumulated so far when the running maximum grows.
      if (blockMax > max) {
        if (sum !== 0) {
          const r = Math.exp(max - blockMax);
          sum *= r;
          for (let h = 0; h < HV; h++) acc[h] *= r;
        }
        max = blockMax;
      }
      // Pass 2: probabilities (unnormalised) times V.
      for (let j = j0; j < j1; j++) {
        const p = Math.exp(scores[j - j0]! - max);
        if (p === 0) continue;
        sum += p;
        const vo = vBase + j * vS;
        for (let h = 0; h < HV; h++) acc[h] += p * v[vo + h]!;
      }
    }
    if (sum === 0) {
      // Every allowed key scored -inf: PyTorch SDPA's IsNaN→0 guard gives zeros, so do we.
      out.fill(0, o, o + HV);
      continue;
    }
    const inv = 1 / sum;
    for (let h = 0; h < HV; h++) out[o + h] = acc[h]! * inv;
  }
}

/** Synchronous, single-thread attention over every (batch, head, row). */
export function attentionCore(args: AttentionArgs): void {
  validateAttentionArgs(args);
  for (let b = 0; b < args.batch; b++)
    for (let n = 0; n < args.numHeads; n++) attentionRows(args, b, n, 0, args.seqQ);
}

/** Multiply-add count of a problem (2·Sq·Skv·(H + Hv) per head), used to decide when threads pay off. */
export function attentionFlops(
  a: Pick<AttentionArgs, "batch" | "numHeads" | "seqQ" | "seqKV" | "headSize" | "vHeadSize">,
): number {
  return 2 * a.batch * a.numHeads * a.seqQ * a.seqKV * (a.headSize + a.vHeadSize);
}
