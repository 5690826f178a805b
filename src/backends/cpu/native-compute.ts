/**
 * The CPU primitives on the native kernels (native/, loaded by ./native): GEMM with weights packed once,
 * the flash-style attention and the GELU maps, all on the addon's own thread pool. The addon's calls are
 * synchronous — its pool hands work off in microseconds, so "async" here means "already done": the event
 * loop is held for the kernel's duration, as onnxruntime-node's synchronous path does. Problems the native
 * kernels do not cover (transposed A, alpha ≠ 1, attention softcap) run on the fallback primitives.
 */
import type { AttentionArgs } from "../../ops/attention-args.js";
import type { GemmActivation, GemmProblem } from "../../ops/gemm-problem.js";
import type { CpuCompute } from "./compute.js";
import { isImmutable } from "./immutable.js";
import type { MapName } from "./map-parallel.js";
import type { Activation, NativeKernels, PackedWeights } from "./native/index.js";

/** Packed panels of immutable weights, per array and per view of it (offset, stride, transpose, K×N). */
const packedCache = new WeakMap<Float32Array, Map<string, PackedWeights>>();

/** The part of a GEMM problem that decides op(B)'s packed panels (what prepackWeights derives from a node). */
export type WeightView = Pick<GemmProblem, "B" | "bOffset" | "ldb" | "transB" | "K" | "N">;

/** The cache key of one view of B: a run and the prepare step must agree on it to share the panels. */
function viewKey(native: NativeKernels, p: WeightView): string {
  return `${p.bOffset}:${p.ldb}:${p.transB ? 1 : 0}:${p.K}:${p.N}:${native.isa}`;
}

/** op(B) packed for the native GEMM: cached when B is an initializer, packed for this call otherwise. */
export function packedB(native: NativeKernels, p: WeightView): PackedWeights {
  const pack = () =>
    native.packWeights(p.B, p.K, p.N, { offset: p.bOffset, ld: p.ldb, transposed: p.transB });
  if (!isImmutable(p.B)) return pack();
  let views = packedCache.get(p.B);
  if (!views) {
    views = new Map();
    packedCache.set(p.B, views);
  }
  const key = viewKey(native, p);
  let packed = views.get(key);
  if (!packed) {
    packed = pack();
    views.set(key, packed);
  }
  return packed;
}

/** How many packed views of the weight array `b` the cache holds (tests, reports). */
export function packedViewCount(b: Float32Array): number {
  return packedCache.get(b)?.size ?? 0;
}

/**
 * Whether the native GEMM computes this problem (row-major A, no alpha scaling; an activation only where it
 * comes before the residual the kernel adds last, i.e. there is none: the kernel's order is act(AB + bias) + r).
 */
export function nativeGemmFits(p: GemmProblem): boolean {
  // A full C matrix (beta ≠ 0, no row-bias hint) becomes the kernel's residual: only with no other epilogue.
  return !p.transA && p.alpha === 1 && (p.beta === 0 || !!p.rowBias || (!p.activation && !p.residual));
}

const NATIVE_ACTIVATION: Record<GemmActivation, Activation> = { gelu: "gelu", "gelu-tanh": "fastGelu" };

/** A problem's activation as the native kernels name it. */
function nativeActivation(a: GemmActivation | undefined): Activation | undefined {
  return a && NATIVE_ACTIVATION[a];
}

/** Rows [r0, r1) of one problem (whole problem by default); `residual` is beta·C copied out, M×N. */
function nativeGemmRows(
  native: NativeKernels,
  p: GemmProblem,
  b: PackedWeights,
  r0: number,
  r1: number,
  residual: Float32Array | undefined,
): void {
  native.gemm(r1 - r0, p.A, b, p.C, {
    aOffset: p.aOffset + r0 * p.lda,
    lda: p.lda,
    cOffset: p.cOffset + r0 * p.ldc,
    ldc: p.ldc,
    bias: p.rowBias,
    residual,
    residualOffset: r0 * p.N,
    activation: nativeActivation(p.activation),
  });
}

/**
 * The kernel's residual operand (M×N): FusedGemm's residual input, or beta·C copied out when the problem reads C
 * (beta ≠ 0, no row-bias hint) — the kernel overwrites C before its epilogue reads the residual, so C cannot be
 * its own residual.
 */
function residualOf(p: GemmProblem): Float32Array | undefined {
  if (p.residual) return p.residual;
  if (p.beta === 0 || p.rowBias) return undefined;
  const residual = new Float32Array(p.M * p.N);
  for (let i = 0; i < p.M; i++)
    for (let j = 0; j < p.N; j++) residual[i * p.N + j] = p.beta * p.C[p.cOffset + i * p.ldc + j]!;
  return residual;
}

function nativeGemm(native: NativeKernels, p: GemmProblem): void {
  if (p.M <= 0 || p.N <= 0) return;
  nativeGemmRows(native, p, packedB(native, p), 0, p.M, residualOf(p));
}

/**
 * A slice of GEMM work between two turns of the event loop in an async run: about 8 ms at this machine's native
 * rate on two threads, so timers and I/O wait no longer than that for the model's GEMMs (the native call itself
 * cannot be interrupted). Slices are row blocks, and each re-reads the whole packed B: at 3e8 flops (48 rows of
 * a BERT FFN GEMM) a [8,128] BERT-base-width run spent 17% more CPU time than at 2e9 (measured in one process,
 * interleaved, `node --import tsx bench/slice-size.ts`). Row slices of a multiple of 16 keep the tiles whole.
 */
export let NATIVE_SLICE_FLOPS = 2e9;

/** For benchmarks: the slice size in flops (returns the previous one). */
export function setNativeSliceFlops(flops: number): number {
  const previous = NATIVE_SLICE_FLOPS;
  NATIVE_SLICE_FLOPS = flops;
  return previous;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Rows of an N×K problem per event-loop slice (NATIVE_SLICE_FLOPS, a multiple of 16). */
export function sliceRows(N: number, K: number): number {
  const rowFlops = 2 * N * Math.max(K, 1);
  return Math.max(16, Math.floor(NATIVE_SLICE_FLOPS / rowFlops / 16) * 16);
}

async function nativeGemmSliced(native: NativeKernels, p: GemmProblem): Promise<void> {
  if (p.M <= 0 || p.N <= 0) return;
  const b = packedB(native, p);
  const residual = residualOf(p);
  const step = sliceRows(p.N, p.K);
  for (let r0 = 0; r0 < p.M; r0 += step) {
    if (r0 > 0) await nextTurn();
    nativeGemmRows(native, p, b, r0, Math.min(p.M, r0 + step), residual);
  }
}

/**
 * One native GEMM problem with its weights packed and its options resolved: what a CPU bound plan
 * (bound-plan.ts) calls again on later runs with that run's A and C, skipping the op's contract.
 */
export interface BoundGemm {
  M: number;
  N: number;
  K: number;
  packed: PackedWeights;
  options: {
    aOffset: number;
    lda: number;
    cOffset: number;
    ldc: number;
    bias?: Float32Array;
    activation?: Activation;
  };
  /** The problem adds a residual (M×N, FusedGemm's input 3): each run hands its own array to runBoundGemm. */
  residual: boolean;
}

/**
 * `p` resolved for replay, or undefined where a later run could not reuse it as is: a problem the native
 * kernel does not take, a residual read from C (its contents change per run), B or the bias not an
 * initializer (their contents may change between runs; the packed panels would be stale). A residual input
 * is bound as "present": its array is the run's (runBoundGemm's `residual`).
 */
export function bindNativeGemm(native: NativeKernels, p: GemmProblem): BoundGemm | undefined {
  if (!nativeGemmFits(p) || (p.beta !== 0 && !p.rowBias) || !isImmutable(p.B)) return undefined;
  if (p.rowBias && !isImmutable(p.rowBias)) return undefined;
  return {
    M: p.M,
    N: p.N,
    K: p.K,
    packed: packedB(native, p),
    options: {
      aOffset: p.aOffset,
      lda: p.lda,
      cOffset: p.cOffset,
      ldc: p.ldc,
      ...(p.rowBias && { bias: p.rowBias }),
      ...(p.activation && { activation: nativeActivation(p.activation) }),
    },
    residual: !!p.residual,
  };
}

/** Rows [r0, r1) of a bound problem on `a`, `c` and its `residual` (the arrays of this run). */
export function runBoundGemm(
  native: NativeKernels,
  g: BoundGemm,
  a: Float32Array,
  c: Float32Array,
  r0: number,
  r1: number,
  residual?: Float32Array,
): void {
  const o = g.options;
  native.gemm(r1 - r0, a, g.packed, c, {
    aOffset: o.aOffset + r0 * o.lda,
    lda: o.lda,
    cOffset: o.cOffset + r0 * o.ldc,
    ldc: o.ldc,
    bias: o.bias,
    activation: o.activation,
    ...(residual && { residual, residualOffset: r0 * g.N }),
  });
}

/**
 * Whether every input the problem may read is finite, by a native scan of the whole Q, K, V (and bias)
 * arrays: a superset of what attentionBatchFinite scans element by element in JS (2.6 ms of a 4-layer [1,128]
 * run), so a non-finite value the kernel would not read only costs the exact fallback path, never a result.
 */
function allFinite(native: NativeKernels, a: AttentionArgs): boolean {
  const arrays = new Set<Float32Array>([a.q, a.k, a.v]);
  if (a.bias) arrays.add(a.bias.data);
  for (const x of arrays) if (!native.allFinite(x)) return false;
  return true;
}

/** The native kernels' fields of one attention problem (the same fields, bar softcap). */
function nativeAttention(native: NativeKernels, a: AttentionArgs): void {
  const { softcap: _softcap, ...rest } = a;
  native.attention(rest);
}

const NATIVE_MAPS: Record<MapName, "gelu" | "fastGelu"> = { "gelu-erf": "gelu", "gelu-tanh": "fastGelu" };

/** Threads last given to the native pool (it is process-wide): set only when a backend asks for others. */
let poolThreads: number | undefined;

export function useNativeThreads(native: NativeKernels, threads: number): void {
  if (poolThreads === threads) return;
  if (native.threads !== threads) native.setThreads(threads);
  poolThreads = threads;
}

export interface NativeComputeOptions {
  /** Native GEMM (false: the fallback's, e.g. gemmKernel "js"). */
  gemm: boolean;
  /** Native attention (false: the fallback's). */
  attention: boolean;
}

/** `fallback` with its primitives replaced by the native kernels where they apply. */
export function nativeCompute(
  native: NativeKernels,
  fallback: CpuCompute,
  opts: NativeComputeOptions,
): CpuCompute {
  const threads = fallback.threads;
  const ready = () => useNativeThreads(native, threads);
  const gemm = (problems: readonly GemmProblem[]) => {
    ready();
    const rest = problems.filter((p) => !nativeGemmFits(p));
    for (const p of problems) if (nativeGemmFits(p)) nativeGemm(native, p);
    if (rest.length) fallback.gemm(rest);
  };
  const attentionSync = (problems: readonly AttentionArgs[]) => {
    ready();
    // Softcap, and inputs with NaN/Inf (the fallback has the unfused graph's non-finite semantics), stay there.
    const rest = problems.filter((a) => (a.softcap !== undefined && a.softcap > 0) || !allFinite(native, a));
    for (const a of problems) if (!rest.includes(a)) nativeAttention(native, a);
    if (rest.length) fallback.attentionSync(rest);
  };
  return {
    ...fallback,
    native,
    ...(opts.gemm && {
      gemmOnNative: true,
      gemm,
      gemmAsync: async (problems) => {
        ready();
        for (const p of problems) {
          if (nativeGemmFits(p)) await nativeGemmSliced(native, p);
          else fallback.gemm([p]);
        }
      },
    }),
    ...(opts.attention && {
      attentionOnNative: true,
      attention: (args) => attentionSync([args]),
      attentionSync,
      attentionAsync: async (problems) => attentionSync(problems),
    }),
    mapAsync: async (map, x, y) => {
      ready();
      native.activation(NATIVE_MAPS[map], x, y);
    },
  };
}
