/**
 * The raw interface of the native addon (native/src/addon.cc), exactly as it is exported: positional
 * arguments, typed arrays addressed by element offsets. The CPU backend uses the typed wrappers in
 * src/backends/cpu/native/kernels.ts instead.
 */

/** Opaque handle of a packed B operand (a V8 External that owns the packed panels). */
export type PackedHandle = { readonly __packedB: unique symbol };

export interface RawLayout {
  offset: number;
  batchStride: number;
  headStride: number;
  seqStride: number;
}

export interface RawAttention {
  batch: number;
  numHeads: number;
  kvNumHeads: number;
  seqQ: number;
  seqKV: number;
  headSize: number;
  vHeadSize: number;
  scale: number;
  q: Float32Array;
  qLayout: RawLayout;
  k: Float32Array;
  kLayout: RawLayout;
  v: Float32Array;
  vLayout: RawLayout;
  out: Float32Array;
  outLayout: RawLayout;
  keyLengths?: Int32Array;
  queryLengths?: Int32Array;
  cuSeqlens?: Int32Array;
  causalOffset?: number;
  bias?: { data: Float32Array; offset: number; batchStride: number; headStride: number; rowStride: number };
}

export interface NativeBinding {
  info(): { isa: string; threads: number; isas: string[] };
  selectIsa(name: string): boolean;
  setThreads(n: number): void;
  allFinite(x: Float32Array, offset: number, n: number): boolean;
  /** n bytes from src at srcOffset to dst at dstOffset, split over the pool's threads (optional: older builds). */
  copyBytes?(
    dst: ArrayBuffer | ArrayBufferView,
    dstOffset: number,
    src: ArrayBuffer | ArrayBufferView,
    srcOffset: number,
    n: number,
  ): void;
  packB(b: Float32Array, offset: number, ldb: number, K: number, N: number, trans: boolean): PackedHandle;
  gemm(
    M: number,
    a: Float32Array,
    aOffset: number,
    lda: number,
    packed: PackedHandle,
    c: Float32Array,
    cOffset: number,
    ldc: number,
    bias: Float32Array | null,
    activation: number,
    residual: Float32Array | null,
    residualOffset: number,
    ldr: number,
  ): void;
  layerNorm(
    x: Float32Array,
    xOffset: number,
    y: Float32Array,
    yOffset: number,
    rows: number,
    d: number,
    epsilon: number,
    gamma: Float32Array,
    beta: Float32Array | null,
    mean: Float32Array | null,
    invStd: Float32Array | null,
  ): void;
  skipLayerNorm(
    x: Float32Array,
    xOffset: number,
    skip: Float32Array,
    skipOffset: number,
    skipRows: number,
    bias: Float32Array | null,
    gamma: Float32Array,
    beta: Float32Array | null,
    y: Float32Array,
    yOffset: number,
    sum: Float32Array | null,
    sumOffset: number,
    rows: number,
    d: number,
    epsilon: number,
  ): void;
  softmax(x: Float32Array, xOffset: number, y: Float32Array, yOffset: number, rows: number, d: number): void;
  activation(
    x: Float32Array,
    xOffset: number,
    y: Float32Array,
    yOffset: number,
    n: number,
    bias: Float32Array | null,
    activation: number,
  ): void;
  add(
    a: Float32Array,
    aOffset: number,
    b: Float32Array,
    bOffset: number,
    bLength: number,
    y: Float32Array,
    yOffset: number,
    n: number,
  ): void;
  attention(args: RawAttention): void;
  /** Register-only FMAs, `iterations` steps per task, 16 tasks per pool thread; returns the flops done. */
  fmaProbe(iterations: number): number;
  /**
   * `jobs` fork-joins of one task per pool thread (each task waits for all to start), the caller sleeping
   * `pauseMicros` before each: median and 90th percentile of one, in nanoseconds.
   */
  poolHandoff(jobs: number, pauseMicros: number): { median: number; p90: number; threads: number };
}
