/**
 * The single-thread attention kernel behind the shared CPU attention core (see attention-core.ts).
 *
 * `attentionRows` runs on the WebAssembly SIMD kernel (attention-wasm.ts over wasm/attention.ts, f32x4, ~5x
 * this file's JS kernel) whenever the thread has it; the plain-JS kernel below (`attentionRowsJs`) is the
 * fallback (no WebAssembly SIMD, or MHAFUSE_NO_WASM=1) and defines the semantics both follow.
 *
 * Flash-attention style: query rows walk their allowed keys in blocks of 64, keeping a running maximum and
 * sum per row (online softmax), so no [B, N, Sq, Skv] score tensor is ever materialised. The work is
 * register-blocked like gemm.ts: 4 query rows at a time against packed, float64 4-key panels (scores) and
 * 4-column value panels (P·V), each through a 4×4 micro-kernel with its accumulators in locals. Keys beyond
 * the key length or past a whole tile's causal limit are never read; a key masked for only some rows of a
 * tile gets probability 0 in those rows. Padded query rows are written as zeros without any work. Inputs
 * are addressed through strided layouts so packed QKV, BSNH and BNSH tensors can all be read in place. The
 * problem types and the reference semantics live in src/ops/attention-args.ts.
 */

import { assert } from "../../errors.js";
import type { AttentionArgs } from "../../ops/attention-args.js";
import { attentionBatchFinite, attentionRowsFinite, attentionRowsNonFinite } from "./attention-nonfinite.js";
import {
  attentionBatchWasm,
  attentionRowsWasm,
  beginAttentionJob,
  endAttentionJob,
  wasmAttentionAvailable,
} from "./attention-wasm.js";
import { defaultAttentionKernel } from "./defaults.js";

/** Keys per online-softmax block: big enough to amortise the rescale, small enough to stay in L1. */
const KEY_BLOCK = 64;
/** Query rows sharing each packed key block while it is in cache (a multiple of 4). */
const ROW_GROUP = 32;

/** 2^(f/64), f = 0..63, and 2^(m - 1100), m = 0..1100: the tables of the inlined exp in attentionRows. */
const EXP_FRAC = Float64Array.from({ length: 64 }, (_, f) => 2 ** (f / 64));
const EXP_POW2 = Float64Array.from({ length: 1101 }, (_, m) => 2 ** (m - 1100));

/**
 * Per-thread scratch, grown to the largest problem seen so far (reused across calls). Everything is float64
 * so the micro-kernels run without float32→float64 conversions and accumulate in double precision.
 */
export class Scratch {
  /** Scaled query rows of a row group, per tile of 4 rows: [tile][head dim][4 rows]. */
  q = new Float64Array(ROW_GROUP * 64);
  /** The (b, kv head)'s keys, in panels of 4 keys: [key / 4][head dim][key % 4], zero padded. */
  k = new Float64Array(64 * 64);
  /** The (b, kv head)'s values, in panels of 4 columns: [column / 4][key][column % 4], zero padded. */
  v = new Float64Array(64 * 64);
  /** Scores, then probabilities, of one key block for the 4 rows of a tile: [key][4 rows]. */
  p = new Float64Array(KEY_BLOCK * 4);
  /** Unnormalised output rows of a row group: [row][vHeadSize rounded up to 4]. */
  acc = new Float64Array(ROW_GROUP * 64);
  /** Per row of the group: running max, running sum, rescale factor of the current block. */
  max = new Float64Array(ROW_GROUP);
  sum = new Float64Array(ROW_GROUP);
  rescale = new Float64Array(ROW_GROUP);
  /** Per row of the group: keys it may read (0 = a zero row). */
  keyEnd = new Int32Array(ROW_GROUP);
  fit(headSize: number, vHeadSize: number, keys: number): this {
    const hv = (vHeadSize + 3) & ~3;
    if (this.q.length < ROW_GROUP * headSize) this.q = new Float64Array(ROW_GROUP * headSize);
    if (this.k.length < keys * headSize) this.k = new Float64Array(keys * headSize);
    if (this.v.length < keys * hv) this.v = new Float64Array(keys * hv);
    if (this.acc.length < ROW_GROUP * hv) this.acc = new Float64Array(ROW_GROUP * hv);
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

/** Which kernel runs the rows: "auto" (the default) is the wasm SIMD kernel when this thread has it. */
export type AttentionKernel = "auto" | "wasm" | "js";

/** Whether `kernel` means the WebAssembly SIMD kernel on this thread ("wasm" throws when it is unavailable). */
export function useWasmKernel(kernel: AttentionKernel = defaultAttentionKernel()): boolean {
  if (kernel === "js") return false;
  const available = wasmAttentionAvailable();
  assert(available || kernel === "auto", "attention: the WebAssembly SIMD kernel is unavailable");
  return available;
}

/**
 * Rows [rowStart, rowEnd) of one (batch, head): the kernel every entry point ends in. Runs on the WebAssembly
 * SIMD kernel (attention-wasm.ts) when this thread has it, else on the JS kernel below (attentionRowsJs).
 */
export function attentionRows(
  a: AttentionArgs,
  b: number,
  n: number,
  rowStart: number,
  rowEnd: number,
  scratch: Scratch = sharedScratch,
  wasm = useWasmKernel(),
): void {
  // NaN/Inf inputs: the unfused graph's semantics (attention-nonfinite.ts), not the kernels' finite fast path.
  if (!attentionRowsFinite(a, b, n, rowStart, rowEnd)) attentionRowsNonFinite(a, b, n, rowStart, rowEnd);
  else if (!wasm || !attentionRowsWasm(a, b, n, rowStart, rowEnd))
    attentionRowsJs(a, b, n, rowStart, rowEnd, scratch);
}

/**
 * The plain-JS kernel: the fallback when WebAssembly SIMD is unavailable (or MHAFUSE_NO_WASM is set).
 *
 * Register-blocked like a GEMM. The keys and values the rows may read are packed once (float64, 4-wide
 * panels). Rows go in groups of ROW_GROUP, so one key block's K and V panels stay in cache while every
 * tile of 4 rows of the group uses them; for each (key block, tile) a 4×4 micro-kernel computes the score
 * tile Q·Kᵀ, each row takes its bias, masks and online-softmax update, and a second 4×4 micro-kernel adds
 * P·V to the rows' output accumulators. Keys a row may not read get probability 0; when some value is not
 * finite (0·∞ = NaN) the P·V step falls back to a scalar loop that skips zero probabilities, as if those
 * keys were never visited.
 */
export function attentionRowsJs(
  a: AttentionArgs,
  b: number,
  n: number,
  rowStart: number,
  rowEnd: number,
  scratch: Scratch = sharedScratch,
): void {
  if (rowEnd <= rowStart) return;
  const { headSize: H, vHeadSize: HV, scale, q, k, v, out } = a;
  const g = Math.floor(n / (a.numHeads / a.kvNumHeads));
  const qBase = a.qLayout.offset + b * a.qLayout.batchStride + n * a.qLayout.headStride;
  const kBase = a.kLayout.offset + b * a.kLayout.batchStride + g * a.kLayout.headStride;
  const vBase = a.vLayout.offset + b * a.vLayout.batchStride + g * a.vLayout.headStride;
  const oBase = a.outLayout.offset + b * a.outLayout.batchStride + n * a.outLayout.headStride;
  const qS = a.qLayout.seqStride;
  const oS = a.outLayout.seqStride;
  const keyLen = Math.max(0, Math.min(a.seqKV, a.keyLengths ? a.keyLengths[b]! : a.seqKV));
  const queryLen = Math.min(a.seqQ, a.queryLengths ? a.queryLengths[b]! : a.seqQ);
  const bias = a.bias;
  const biasData = bias?.data;
  const biasBase = bias ? bias.offset + b * bias.batchStride + n * bias.headStride : 0;
  const biasRowStride = bias ? bias.rowStride : 0;
  const causal = a.causalOffset;

  // The allowed key range only grows with the row, so the last live row reads the most keys.
  const lastRow = Math.min(rowEnd, queryLen) - 1;
  let keys = lastRow >= rowStart ? keyLen : 0;
  if (causal !== undefined) keys = Math.min(keys, lastRow + causal + 1);
  if (keys <= 0) {
    for (let i = rowStart; i < rowEnd; i++) out.fill(0, oBase + i * oS, oBase + i * oS + HV);
    return;
  }
  const keysPad = (keys + 3) & ~3;
  const HVp = (HV + 3) & ~3;
  const s = scratch.fit(H, HV, keysPad);
  const pq = s.q;
  const pk = s.k;
  const pv = s.v;
  const pp = s.p;
  const acc = s.acc;
  const rowMax = s.max;
  const rowSum = s.sum;
  const rescale = s.rescale;
  const keyEnd = s.keyEnd;
  const expFrac = EXP_FRAC;
  const expPow2 = EXP_POW2;
  packKeys(k, kBase, a.kLayout.seqStride, keys, keysPad, H, pk);
  const valuesFinite = packValues(v, vBase, a.vLayout.seqStride, keys, keysPad, HV, pv);
  const vPanel = keysPad * 4;

  for (let g0 = rowStart; g0 < rowEnd; g0 += ROW_GROUP) {
    const groupRows = Math.min(ROW_GROUP, rowEnd - g0);
    const tiles = (groupRows + 3) >> 2;
    let groupKeys = 0;
    for (let r = 0; r < 4 * tiles; r++) {
      const i = g0 + r;
      let e = r < groupRows && i < queryLen ? keyLen : 0;
      if (causal !== undefined) e = Math.min(e, i + causal + 1);
      if (e < 0) e = 0;
      keyEnd[r] = e;
      if (e > groupKeys) groupKeys = e;
      rowMax[r] = Number.NEGATIVE_INFINITY;
      rowSum[r] = 0;
      // Scaled query row, interleaved by row within its tile; dead rows are zeros.
      const d0 = (r >> 2) * 4 * H + (r & 3);
      if (e > 0) {
        const qo = qBase + i * qS;
        for (let h = 0, d = d0; h < H; h++, d += 4) pq[d] = q[qo + h]! * scale;
      } else {
        for (let h = 0, d = d0; h < H; h++, d += 4) pq[d] = 0;
      }
    }
    acc.fill(0, 0, 4 * tiles * HVp);

    for (let j0 = 0; j0 < groupKeys; j0 += KEY_BLOCK) {
      for (let t = 0; t < tiles; t++) {
        const r0 = 4 * t;
        const tileKeys = Math.max(keyEnd[r0]!, keyEnd[r0 + 1]!, keyEnd[r0 + 2]!, keyEnd[r0 + 3]!);
        if (tileKeys <= j0) continue;
        const j1 = Math.min(tileKeys, j0 + KEY_BLOCK);
        const nb = j1 - j0;
        // Score tile Q·Kᵀ, [key][row].
        scoreBlock(H, pq, r0 * H, pk, j0 * H, (nb + 3) >> 2, pp);
        // Bias, masks and the online-softmax update, row by row; pp becomes the probabilities.
        for (let r = 0; r < 4; r++) {
          const row = r0 + r;
          const limit = Math.min(j1, keyEnd[row]!);
          let blockMax = Number.NEGATIVE_INFINITY;
          if (biasData) {
            const bo = biasBase + (g0 + row) * biasRowStride;
            for (let j = j0, d = r; j < limit; j++, d += 4) {
              const x = pp[d]! + biasData[bo + j]!;
              pp[d] = x;
              if (x > blockMax) blockMax = x;
            }
          } else {
            for (let j = j0, d = r; j < limit; j++, d += 4) {
              const x = pp[d]!;
              if (x > blockMax) blockMax = x;
            }
          }
          rescale[row] = 1;
          let first = j0;
          if (blockMax !== Number.NEGATIVE_INFINITY) {
            // Rescale what was accumulated so far when the running maximum grows.
            let max = rowMax[row]!;
            let sum = rowSum[row]!;
            if (blockMax > max) {
              if (sum !== 0) {
                const f = Math.exp(max - blockMax);
                sum *= f;
                rescale[row] = f;
              }
              max = blockMax;
              rowMax[row] = max;
            }
            for (let j = j0, d = r; j < limit; j++, d += 4) {
              // exp(x) for x <= 0, inlined (Math.exp is a ~10 ns call, Math.round slower than floor):
              // x = (64m + f)·ln2/64 + y with |y| <= ln2/128, so e^x = 2^m · 2^(f/64) · e^y, e^y by its
              // degree-3 Taylor polynomial (relative error < 1e-10). NaN stays NaN; below -745 it is 0.
              const x = pp[d]! - max;
              let e = 0;
              if (x > -745) {
                const kf = Math.floor(x * 92.33248261689366 + 0.5);
                const y = x - kf * 0.010830424696249145;
                const ki = kf | 0;
                e =
                  expFrac[ki & 63]! *
                  expPow2[(ki >> 6) + 1100]! *
                  (1 + y * (1 + y * (0.5 + y * 0.16666666666666666)));
              } else if (Number.isNaN(x)) {
                e = x;
              }
              pp[d] = e;
              sum += e;
            }
            rowSum[row] = sum;
            first = limit;
          }
          // Keys this row may not read (or a block of -inf scores): probability 0.
          for (let j = first, d = r + 4 * (first - j0); j < j1; j++, d += 4) pp[d] = 0;
          const f = rescale[row]!;
          if (f !== 1) for (let c = row * HVp, e = c + HVp; c < e; c++) acc[c] = acc[c]! * f;
        }
        if (valuesFinite) pvBlock(nb, pp, pv, 4 * j0, vPanel, acc, r0 * HVp, HVp);
        else pvScalar(nb, pp, pv, 4 * j0, vPanel, acc, r0 * HVp, HV, HVp);
      }
    }

    for (let r = 0; r < groupRows; r++) {
      const o = oBase + (g0 + r) * oS;
      const sum = rowSum[r]!;
      if (sum === 0) {
        // A zero row, or every allowed key scored -inf: PyTorch SDPA's IsNaN→0 guard gives zeros, so do we.
        out.fill(0, o, o + HV);
        continue;
      }
      const inv = 1 / sum;
      for (let c = 0, x = r * HVp; c < HV; c++, x++) out[o + c] = acc[x]! * inv;
    }
  }
}

/** Keys [0, keys) as panels of 4 keys, [key / 4][h][key % 4]; keys [keys, keysPad) are zeros. */
function packKeys(
  k: Float32Array,
  kBase: number,
  kS: number,
  keys: number,
  keysPad: number,
  H: number,
  pk: Float64Array,
): void {
  for (let j = 0; j < keysPad; j++) {
    let d = (j & ~3) * H + (j & 3);
    const end = d + 4 * H;
    if (j < keys) {
      for (let src = kBase + j * kS; d < end; d += 4, src++) pk[d] = k[src]!;
    } else {
      for (; d < end; d += 4) pk[d] = 0;
    }
  }
}

/**
 * Values [0, keys) as panels of 4 columns, [c / 4][key][c % 4]; padding columns and keys are zeros.
 * Returns whether every value is finite.
 */
function packValues(
  v: Float32Array,
  vBase: number,
  vS: number,
  keys: number,
  keysPad: number,
  HV: number,
  pv: Float64Array,
): boolean {
  const panel = keysPad * 4;
  let poison = 0;
  for (let j = 0; j < keysPad; j++) {
    const row = 4 * j;
    if (j < keys) {
      const src = vBase + j * vS;
      let c = 0;
      for (; c + 4 <= HV; c += 4) {
        const d = (c >> 2) * panel + row;
        const x0 = v[src + c]!;
        const x1 = v[src + c + 1]!;
        const x2 = v[src + c + 2]!;
        const x3 = v[src + c + 3]!;
        pv[d] = x0;
        pv[d + 1] = x1;
        pv[d + 2] = x2;
        pv[d + 3] = x3;
        poison += x0 * 0 + x1 * 0 + x2 * 0 + x3 * 0;
      }
      if (c < HV) {
        const d = (c >> 2) * panel + row;
        for (let t = 0; t < 4; t++, c++) {
          const x = c < HV ? v[src + c]! : 0;
          pv[d + t] = x;
          poison += x * 0;
        }
      }
    } else {
      for (let c = 0; c < HV; c += 4) pv.fill(0, (c >> 2) * panel + row, (c >> 2) * panel + row + 4);
    }
  }
  return poison === 0;
}

/** Scores of 4 rows × 4·panels keys: s[16p + 4·key + row] = Σ_h q[q0 + 4h + row] · k[ki + 4H·p + 4h + key]. */
function scoreBlock(
  H: number,
  q: Float64Array,
  q0: number,
  k: Float64Array,
  ki: number,
  panels: number,
  s: Float64Array,
): void {
  const qEnd = q0 + 4 * H;
  for (let si = 0, sEnd = 16 * panels; si < sEnd; si += 16) {
    let c00 = 0,
      c01 = 0,
      c02 = 0,
      c03 = 0;
    let c10 = 0,
      c11 = 0,
      c12 = 0,
      c13 = 0;
    let c20 = 0,
      c21 = 0,
      c22 = 0,
      c23 = 0;
    let c30 = 0,
      c31 = 0,
      c32 = 0,
      c33 = 0;
    // Literal strides: V8 does not constant-fold module constants here, and that halves the speed.
    for (let qi = q0; qi < qEnd; qi += 4, ki += 4) {
      const a0 = q[qi]!,
        a1 = q[qi + 1]!,
        a2 = q[qi + 2]!,
        a3 = q[qi + 3]!;
      let bv = k[ki]!;
      c00 += a0 * bv;
      c10 += a1 * bv;
      c20 += a2 * bv;
      c30 += a3 * bv;
      bv = k[ki + 1]!;
      c01 += a0 * bv;
      c11 += a1 * bv;
      c21 += a2 * bv;
      c31 += a3 * bv;
      bv = k[ki + 2]!;
      c02 += a0 * bv;
      c12 += a1 * bv;
      c22 += a2 * bv;
      c32 += a3 * bv;
      bv = k[ki + 3]!;
      c03 += a0 * bv;
      c13 += a1 * bv;
      c23 += a2 * bv;
      c33 += a3 * bv;
    }
    s[si] = c00;
    s[si + 1] = c10;
    s[si + 2] = c20;
    s[si + 3] = c30;
    s[si + 4] = c01;
    s[si + 5] = c11;
    s[si + 6] = c21;
    s[si + 7] = c31;
    s[si + 8] = c02;
    s[si + 9] = c12;
    s[si + 10] = c22;
    s[si + 11] = c32;
    s[si + 12] = c03;
    s[si + 13] = c13;
    s[si + 14] = c23;
    s[si + 15] = c33;
  }
}

/**
 * acc[a0 + row·ld + c..c+3] += Σ_j p[4j + row] · v[(c / 4)·vPanel + vi + 4j + c % 4] over nb keys, for every
 * column panel c of the ld (vHeadSize rounded up to 4) output columns.
 */
function pvBlock(
  nb: number,
  p: Float64Array,
  v: Float64Array,
  vi: number,
  vPanel: number,
  acc: Float64Array,
  a0: number,
  ld: number,
): void {
  const pEnd = 4 * nb;
  for (let c = 0; c < ld; c += 4, vi += vPanel) {
    const r0 = a0 + c,
      r1 = r0 + ld,
      r2 = r0 + 2 * ld,
      r3 = r0 + 3 * ld;
    let c00 = acc[r0]!,
      c01 = acc[r0 + 1]!,
      c02 = acc[r0 + 2]!,
      c03 = acc[r0 + 3]!;
    let c10 = acc[r1]!,
      c11 = acc[r1 + 1]!,
      c12 = acc[r1 + 2]!,
      c13 = acc[r1 + 3]!;
    let c20 = acc[r2]!,
      c21 = acc[r2 + 1]!,
      c22 = acc[r2 + 2]!,
      c23 = acc[r2 + 3]!;
    let c30 = acc[r3]!,
      c31 = acc[r3 + 1]!,
      c32 = acc[r3 + 2]!,
      c33 = acc[r3 + 3]!;
    for (let pi = 0, bi = vi; pi < pEnd; pi += 4, bi += 4) {
      const a0 = p[pi]!,
        a1 = p[pi + 1]!,
        a2 = p[pi + 2]!,
        a3 = p[pi + 3]!;
      let bv = v[bi]!;
      c00 += a0 * bv;
      c10 += a1 * bv;
      c20 += a2 * bv;
      c30 += a3 * bv;
      bv = v[bi + 1]!;
      c01 += a0 * bv;
      c11 += a1 * bv;
      c21 += a2 * bv;
      c31 += a3 * bv;
      bv = v[bi + 2]!;
      c02 += a0 * bv;
      c12 += a1 * bv;
      c22 += a2 * bv;
      c32 += a3 * bv;
      bv = v[bi + 3]!;
      c03 += a0 * bv;
      c13 += a1 * bv;
      c23 += a2 * bv;
      c33 += a3 * bv;
    }
    acc[r0] = c00;
    acc[r0 + 1] = c01;
    acc[r0 + 2] = c02;
    acc[r0 + 3] = c03;
    acc[r1] = c10;
    acc[r1 + 1] = c11;
    acc[r1 + 2] = c12;
    acc[r1 + 3] = c13;
    acc[r2] = c20;
    acc[r2 + 1] = c21;
    acc[r2 + 2] = c22;
    acc[r2 + 3] = c23;
    acc[r3] = c30;
    acc[r3 + 1] = c31;
    acc[r3 + 2] = c32;
    acc[r3 + 3] = c33;
  }
}

/** P·V when some value is not finite: zero probabilities are skipped, so unread keys cannot leak NaN. */
function pvScalar(
  nb: number,
  p: Float64Array,
  v: Float64Array,
  vi: number,
  vPanel: number,
  acc: Float64Array,
  a0: number,
  HV: number,
  ld: number,
): void {
  for (let r = 0; r < 4; r++) {
    const ar = a0 + r * ld;
    for (let j = 0; j < nb; j++) {
      const pr = p[4 * j + r]!;
      if (pr === 0) continue;
      const vj = vi + 4 * j;
      for (let c = 0; c < HV; c++) acc[ar + c] += pr * v[(c >> 2) * vPanel + vj + (c & 3)]!;
    }
  }
}

/**
 * Synchronous, single-thread attention over every (batch, head, row), on the WebAssembly SIMD kernel when this
 * thread has it (`kernel` "js" or "wasm" picks one; "wasm" throws when it is unavailable).
 */
export function attentionCore(args: AttentionArgs, kernel: AttentionKernel = defaultAttentionKernel()): void {
  validateAttentionArgs(args);
  const wasm = useWasmKernel(kernel);
  beginAttentionJob();
  try {
    for (let b = 0; b < args.batch; b++) {
      // The wasm kernel takes a whole batch at once when the layout lets it copy rows of all heads together.
      if (wasm && attentionBatchFinite(args, b) && attentionBatchWasm(args, b)) continue;
      for (let n = 0; n < args.numHeads; n++) attentionRows(args, b, n, 0, args.seqQ, sharedScratch, wasm);
    }
  } finally {
    endAttentionJob();
  }
}

/** Multiply-add count of a problem (2·Sq·Skv·(H + Hv) per head), used to decide when threads pay off. */
export function attentionFlops(
  a: Pick<AttentionArgs, "batch" | "numHeads" | "seqQ" | "seqKV" | "headSize" | "vHeadSize">,
): number {
  return 2 * a.batch * a.numHeads * a.seqQ * a.seqKV * (a.headSize + a.vHeadSize);
}
