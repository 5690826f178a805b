/**
 * The attention kernel on WebAssembly SIMD (f32x4): `attentionRows` of attention-kernel.ts with the same
 * arguments and semantics, run by wasm/attention.ts (AssemblyScript, embedded as base64 by the build).
 *
 * The module cannot read JS arrays, so each thread owns one instance with its own memory (workers included),
 * and a call copies in what its rows read: the (batch, kv head)'s keys and values (packed by the module into
 * 8-wide panels), the query rows, the bias rows (one row when the bias broadcasts over rows) and each row's key
 * limit; the module writes the output rows, which are copied back through the output layout. Copies are
 * O(rows·(H + Hv) + keys·(H + Hv)) against the O(rows·keys·(H + Hv)) work. Inside one job (an `attentionCore`
 * call, or the units one thread drains from a parallel job) the packed keys and values of the last (problem,
 * batch, kv head) stay in the module's memory, so the row blocks and GQA heads that share them pack them once.
 * `attentionCore` goes a batch at a time where the layout allows (packed QKV, BSNH): one copy per sequence
 * position moves the rows of all heads in and out (attentionBatchWasm), instead of one per head — per-row copies
 * of 64 floats from a strided tensor cost about as much as the kernel's softmax.
 */
import type { AttentionArgs } from "../../ops/attention-args.js";
import { ATTENTION_WASM_BASE64 } from "./wasm/attention-wasm.generated.js";
import { copyRows, heap, instantiateKernel, type WasmMemory } from "./wasm/module.js";

/** Width of the module's key and value-column panels (wasm/attention.ts NR); rows go in tiles of 4 (MR). */
const NR = 8;
const MR = 4;
/** Byte address of the first buffer in the module's memory (the module has no data of its own). */
const BASE = 64;
/** Query rows per call into the module (a multiple of its row group). */
const ROW_CHUNK = 256;
/** Most bytes of one batch's rows that attentionBatchWasm copies into the module's memory at once. */
const SLAB_MAX_BYTES = 1 << 26;

interface Kernel {
  memory: WasmMemory;
  packKV(
    keys: number,
    H: number,
    HV: number,
    k: number,
    kLd: number,
    v: number,
    vLd: number,
    kPack: number,
    vPack: number,
  ): number;
  attend(
    rows: number,
    H: number,
    HV: number,
    scale: number,
    q: number,
    qLd: number,
    kPack: number,
    vPack: number,
    vPanelKeys: number,
    vFinite: number,
    bias: number,
    biasLd: number,
    keyEnd: number,
    out: number,
    outLd: number,
    work: number,
  ): void;
  attendWorkBytes(H: number, HV: number): number;
}

/** Counters for tests and benchmarks (monotonic, per thread). */
export const attentionWasmStats = {
  /** attentionRows calls that ran the wasm kernel. */
  calls: 0,
  /** Packings of a (batch, kv head)'s keys and values (the rest reused the packed copy). */
  kvPacks: 0,
  /** Batches run by attentionBatchWasm (rows of all heads copied in and out at once). */
  batches: 0,
};

let kernel: Kernel | null | undefined;

/** This thread's kernel instance, or null when WebAssembly SIMD is unavailable or switched off. */
function getKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  // Whether to use it is each job's choice (AttentionKernel; MHAFUSE_NO_WASM and
  // MHAFUSE_ATTENTION_KERNEL=js set the default, defaults.ts).
  kernel = instantiateKernel<Kernel>(ATTENTION_WASM_BASE64, false);
  return kernel;
}

/** Whether this thread can run the WebAssembly SIMD attention kernel. */
export function wasmAttentionAvailable(): boolean {
  return getKernel() !== null;
}

/** What the module's memory holds at BASE: the packed keys and values of one (problem, batch, kv head). */
interface PackedKV {
  a: AttentionArgs;
  b: number;
  g: number;
  /** Byte address the packed keys start at (the first buffer of the call's layout). */
  low: number;
  /** Keys packed (the key length of batch b, not cut by causality, so every row block can use them). */
  keys: number;
  vFinite: number;
}
let packed: PackedKV | undefined;
let inJob = false;

/**
 * Brackets one job on this thread: between the two calls, the packed keys and values of a (problem, batch,
 * kv head) are reused, so the caller promises not to change the problems' arrays meanwhile. Outside a job
 * nothing is reused.
 */
export function beginAttentionJob(): void {
  packed = undefined;
  inJob = true;
}
export function endAttentionJob(): void {
  packed = undefined;
  inJob = false;
}

const align16 = (bytes: number) => (bytes + 15) & ~15;

/** Where one head's rows already are in the module's memory: row 0 at byte `at`, rows `ld` floats apart. */
interface Placed {
  at: number;
  ld: number;
}

/** A (batch, head)'s inputs and output when attentionBatchWasm copied the batch's rows in (else per-head copies). */
interface HeadSlabs {
  q: Placed;
  k: Placed;
  v: Placed;
  out: Placed;
}

/**
 * Rows [rowStart, rowEnd) of (batch b, head n) on the wasm kernel; false (nothing done) when it is unavailable.
 * Same contract as attentionRows in attention-kernel.ts.
 */
export function attentionRowsWasm(
  a: AttentionArgs,
  b: number,
  n: number,
  rowStart: number,
  rowEnd: number,
): boolean {
  const k = getKernel();
  if (!k) return false;
  headRows(k, a, b, n, rowStart, rowEnd, BASE, undefined);
  return true;
}

/**
 * The kernel's call for rows [rowStart, rowEnd) of (b, n). Its buffers start at byte `low`; `slabs`, when given,
 * says where the batch's q, k, v rows already are and where the output rows go (nothing is copied back).
 */
function headRows(
  k: Kernel,
  a: AttentionArgs,
  b: number,
  n: number,
  rowStart: number,
  rowEnd: number,
  low: number,
  slabs: HeadSlabs | undefined,
): void {
  if (rowEnd <= rowStart) return;
  const { headSize: H, vHeadSize: HV, out } = a;
  const g = Math.floor(n / (a.numHeads / a.kvNumHeads));
  const oBase = a.outLayout.offset + b * a.outLayout.batchStride + n * a.outLayout.headStride;
  const oS = a.outLayout.seqStride;
  const keyLen = Math.max(0, Math.min(a.seqKV, a.keyLengths ? a.keyLengths[b]! : a.seqKV));
  const queryLen = Math.min(a.seqQ, a.queryLengths ? a.queryLengths[b]! : a.seqQ);
  const causal = a.causalOffset;

  // The allowed key range only grows with the row, so the last live row reads the most keys.
  const lastRow = Math.min(rowEnd, queryLen) - 1;
  let keys = lastRow >= rowStart ? keyLen : 0;
  if (causal !== undefined) keys = Math.min(keys, lastRow + causal + 1);
  if (keys <= 0) {
    if (slabs) {
      const mem = new Float32Array(k.memory.buffer);
      for (let i = rowStart; i < rowEnd; i++) {
        const o = slabs.out.at / 4 + i * slabs.out.ld;
        mem.fill(0, o, o + HV);
      }
    } else {
      for (let i = rowStart; i < rowEnd; i++) out.fill(0, oBase + i * oS, oBase + i * oS + HV);
    }
    return;
  }
  attentionWasmStats.calls++;
  // Rows go to the module in chunks, which bounds its memory (the bias rows above all).
  const chunk = Math.min(rowEnd - rowStart, ROW_CHUNK);
  const chunkPad = (chunk + MR - 1) & ~(MR - 1);
  const bias = a.bias;
  const biasRows = bias ? (bias.rowStride === 0 ? 1 : chunk) : 0;

  // Layout (bytes from low): packed K | packed V | raw Q (raw K and V while packing) | bias | key limits | work
  // | out. Raw Q, K, V and out take no room when the batch's rows are already in (slabs).
  const reuse =
    inJob &&
    packed !== undefined &&
    packed.a === a &&
    packed.b === b &&
    packed.g === g &&
    packed.low === low &&
    packed.keys >= keys;
  const packKeys = reuse ? packed!.keys : keyLen;
  const keysPad = (packKeys + NR - 1) & ~(NR - 1);
  const HVp = (HV + NR - 1) & ~(NR - 1);
  const kPack = low;
  const vPack = kPack + align16(keysPad * H * 4);
  const qRaw = vPack + align16(keysPad * HVp * 4);
  const kvRawBytes = reuse || slabs ? 0 : align16(packKeys * H * 4) + align16(packKeys * HV * 4);
  const biasAt = qRaw + (slabs ? 0 : align16(chunk * H * 4));
  const keyEndAt = biasAt + align16(biasRows * keys * 4);
  const work = keyEndAt + align16(chunkPad * 4);
  const outAt = work + align16(k.attendWorkBytes(H, HV));
  const mem = heap(k.memory, Math.max(outAt + (slabs ? 0 : chunk * HV * 4), qRaw + kvRawBytes));
  // The module's memory never grows inside a call, so the views stay valid.
  const keyEnd = new Int32Array(mem.buffer, keyEndAt, chunkPad);

  let vFinite: number;
  if (reuse) {
    vFinite = packed!.vFinite;
  } else {
    if (slabs) {
      vFinite = k.packKV(packKeys, H, HV, slabs.k.at, slabs.k.ld, slabs.v.at, slabs.v.ld, kPack, vPack);
    } else {
      const kBase = a.kLayout.offset + b * a.kLayout.batchStride + g * a.kLayout.headStride;
      const vBase = a.vLayout.offset + b * a.vLayout.batchStride + g * a.vLayout.headStride;
      const kRaw = qRaw;
      const vRaw = kRaw + align16(packKeys * H * 4);
      copyRows(a.k, kBase, a.kLayout.seqStride, packKeys, H, mem, kRaw / 4);
      copyRows(a.v, vBase, a.vLayout.seqStride, packKeys, HV, mem, vRaw / 4);
      vFinite = k.packKV(packKeys, H, HV, kRaw, H, vRaw, HV, kPack, vPack);
    }
    attentionWasmStats.kvPacks++;
    packed = inJob ? { a, b, g, low, keys: packKeys, vFinite } : undefined;
  }

  const qBase = a.qLayout.offset + b * a.qLayout.batchStride + n * a.qLayout.headStride;
  const qS = a.qLayout.seqStride;
  const bb = bias ? bias.offset + b * bias.batchStride + n * bias.headStride : 0;
  if (bias && bias.rowStride === 0) mem.set(bias.data.subarray(bb, bb + keys), biasAt / 4);
  for (let c0 = rowStart; c0 < rowEnd; c0 += chunk) {
    const rows = Math.min(chunk, rowEnd - c0);
    // Query rows (rows past the query length are masked), each row's key limit, bias rows.
    if (!slabs) copyRows(a.q, qBase + c0 * qS, qS, rows, H, mem, qRaw / 4);
    for (let r = 0; r < chunkPad; r++) {
      const i = c0 + r;
      let e = r < rows && i < queryLen ? keyLen : 0;
      if (causal !== undefined) e = Math.min(e, i + causal + 1);
      keyEnd[r] = Math.max(e, 0);
    }
    if (bias && bias.rowStride !== 0) {
      for (let r = 0; r < rows; r++) {
        const e = keyEnd[r]!;
        if (e === 0) continue;
        const src = bb + (c0 + r) * bias.rowStride;
        mem.set(bias.data.subarray(src, src + e), biasAt / 4 + r * keys);
      }
    }
    k.attend(
      rows,
      H,
      HV,
      a.scale,
      slabs ? slabs.q.at + c0 * slabs.q.ld * 4 : qRaw,
      slabs ? slabs.q.ld : H,
      kPack,
      vPack,
      keysPad,
      vFinite,
      bias ? biasAt : 0,
      bias && bias.rowStride !== 0 ? keys : 0,
      keyEndAt,
      slabs ? slabs.out.at + c0 * slabs.out.ld * 4 : outAt,
      slabs ? slabs.out.ld : HV,
      work,
    );
    if (slabs) continue;
    const o0 = outAt / 4;
    if (oS === HV) out.set(mem.subarray(o0, o0 + rows * HV), oBase + c0 * oS);
    else
      for (let r = 0; r < rows; r++) {
        const s = o0 + r * HV;
        out.set(mem.subarray(s, s + HV), oBase + (c0 + r) * oS);
      }
  }
}

/** Floats of one batch row of a tensor's heads, from head 0's first feature to the last head's last one. */
function span(headStride: number, heads: number, size: number): number {
  return (heads - 1) * headStride + size;
}

/**
 * Every head of batch b, with the batch's rows copied in (and out) once per sequence position instead of once
 * per head: one copy of a row of all heads' q (or k, v, out) features, which for packed QKV and BSNH tensors is
 * a contiguous run. Returns false (nothing done) when the layout does not suit — heads far apart (BNSH), an
 * output whose heads leave gaps (a slab written back would overwrite them), a single head — and the caller
 * goes head by head. Must run inside a job (beginAttentionJob).
 */
export function attentionBatchWasm(a: AttentionArgs, b: number): boolean {
  const k = getKernel();
  const { numHeads: N, kvNumHeads: G, headSize: H, vHeadSize: HV } = a;
  if (!k || N < 2 || H === 0 || HV === 0) return false;
  const qSpan = span(a.qLayout.headStride, N, H);
  const kSpan = span(a.kLayout.headStride, G, H);
  const vSpan = span(a.vLayout.headStride, G, HV);
  const oSpan = span(a.outLayout.headStride, N, HV);
  const compact = (headStride: number, sp: number, heads: number, size: number) =>
    headStride > 0 && sp <= 3 * heads * size + 16;
  if (a.outLayout.headStride !== HV) return false;
  if (!compact(a.qLayout.headStride, qSpan, N, H)) return false;
  if (!compact(a.kLayout.headStride, kSpan, G, H) || !compact(a.vLayout.headStride, vSpan, G, HV))
    return false;

  const keyLen = Math.max(0, Math.min(a.seqKV, a.keyLengths ? a.keyLengths[b]! : a.seqKV));
  const queryLen = Math.max(0, Math.min(a.seqQ, a.queryLengths ? a.queryLengths[b]! : a.seqQ));
  const S = a.seqQ;
  const qAt = BASE;
  // Room for every query row, though only live ones are copied: the kernel reads (and masks) the others.
  const kAt = qAt + align16(S * qSpan * 4);
  const vAt = kAt + align16(keyLen * kSpan * 4);
  const oAt = vAt + align16(keyLen * vSpan * 4);
  const low = oAt + align16(S * oSpan * 4);
  // Long sequences of wide packed rows would take hundreds of MB: those go head by head, a chunk at a time.
  if (low > SLAB_MAX_BYTES) return false;
  let mem = heap(k.memory, low);
  attentionWasmStats.batches++;
  const copyIn = (src: Float32Array, l: AttentionArgs["qLayout"], rows: number, sp: number, at: number) =>
    copyRows(src, l.offset + b * l.batchStride, l.seqStride, rows, sp, mem, at / 4);
  copyIn(a.q, a.qLayout, queryLen, qSpan, qAt);
  copyIn(a.k, a.kLayout, keyLen, kSpan, kAt);
  copyIn(a.v, a.vLayout, keyLen, vSpan, vAt);
  for (let n = 0; n < N; n++) {
    const g = Math.floor(n / (N / G));
    headRows(k, a, b, n, 0, S, low, {
      q: { at: qAt + n * a.qLayout.headStride * 4, ld: qSpan },
      k: { at: kAt + g * a.kLayout.headStride * 4, ld: kSpan },
      v: { at: vAt + g * a.vLayout.headStride * 4, ld: vSpan },
      out: { at: oAt + n * HV * 4, ld: oSpan },
    });
  }
  // Every output row of every head was written (zeros included); the heads are contiguous, so rows go back whole.
  mem = new Float32Array(k.memory.buffer);
  const { out, outLayout: ol } = a;
  const o0 = ol.offset + b * ol.batchStride;
  if (ol.seqStride === oSpan) out.set(mem.subarray(oAt / 4, oAt / 4 + S * oSpan), o0);
  else
    for (let i = 0; i < S; i++) {
      const s = oAt / 4 + i * oSpan;
      out.set(mem.subarray(s, s + oSpan), o0 + i * ol.seqStride);
    }
  return true;
}
