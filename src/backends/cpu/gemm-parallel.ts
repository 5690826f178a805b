/**
 * Float32 GEMM over worker threads, synchronous for the caller (op kernels are synchronous).
 *
 * C is cut into units — blocks of rows, or of columns when N > M (a unit re-packs the operand it shares
 * with the others, so the cut goes across the larger dimension) — and the calling thread and one worker per
 * extra core claim units from a shared counter (shared-job.ts), each running the single-threaded `gemm` on
 * its block. Operands must live in SharedArrayBuffers: A and C are copied into a reusable shared scratch
 * buffer when they are not already shared (and C copied back), B — usually a weight — is copied once and the
 * copy cached for as long as the source array lives.
 *
 * Problems below `GEMM_PARALLEL_MIN_FLOPS` run `gemm` on the calling thread directly: the hand-off
 * (~0.1 ms, a cold worker ~100 ms+, during which the caller simply takes every unit) would not pay.
 *
 * Every thread runs the WebAssembly SIMD kernel (gemm-wasm.ts) through `gemmFast`, which falls back to the
 * plain-JS `gemm` when WebAssembly SIMD is unavailable or the block is tiny. An immutable B is then not copied
 * raw but packed once into the kernel's panel layout (cached in shared memory) and every unit copies its panels.
 */

import {
  applyGemmActivation,
  type GemmProblem as BaseGemmProblem,
  fillRowBias,
} from "../../ops/gemm-problem.js";
import { defaultGemmKernel, type KernelChoice } from "./defaults.js";
import {
  cachedPackedB,
  GEMM_WASM_MIN_MACS,
  gemmFast,
  gemmWasmStats,
  wasmGemmAvailable,
} from "./gemm-wasm.js";
import { isImmutable } from "./immutable.js";
import { type CpuTask, cpuPool } from "./pool.js";
import { awaitSharedJob, runSharedJob } from "./shared-job.js";
import { cpuThreads, type ThreadPool } from "./thread-pool.js";

/** One GEMM (src/ops/gemm-problem.ts), plus what this module adds for the wasm kernel. */
export interface GemmProblem extends BaseGemmProblem {
  /**
   * op(B) packed for the wasm kernel (gemm-wasm.ts `cachedPackedB`), all K rows × N columns; when set, B is
   * not read. Set by this module for immutable B operands.
   */
  packedB?: Float32Array;
}

export interface GemmParallelOptions {
  /** Threads to use, the caller included (default: all cores, or MHAFUSE_THREADS). */
  threads?: number;
  /** "auto" (default) stays on the calling thread below GEMM_PARALLEL_MIN_FLOPS. */
  mode?: "auto" | "always" | "never";
  /** "auto" (default): the WebAssembly SIMD kernel where available; "js": the plain-JS kernel. */
  kernel?: GemmKernel;
  /** The workers to use (default: the process-wide CPU pool; a CPU backend passes its own). */
  pool?: ThreadPool<CpuTask>;
}

export type GemmKernel = KernelChoice;

/** What the job posted to workers carries: problems on shared memory, how they are cut, the control array. */
export interface GemmJob {
  problems: GemmProblem[];
  /** Per problem: true when units are blocks of columns, false for blocks of rows. */
  byColumns: boolean[];
  /** Per problem: rows (or columns) per unit. */
  step: number[];
  /** Running prefix of unit counts: problem p owns units [starts[p], starts[p + 1]). */
  starts: number[];
  control: Int32Array;
  /** Plain-JS kernel only (no packing, no wasm). */
  js: boolean;
}

/** Below this many flops (2·M·N·K summed), the problem runs on the calling thread. */
export const GEMM_PARALLEL_MIN_FLOPS = 4e6;
/** Units per thread: enough for a thread slowed by other load to hand work to the others. */
const UNITS_PER_THREAD = 4;
/** A unit smaller than this costs more in claiming and re-packing than it balances. */
const MIN_UNIT_FLOPS = 1e6;
/** Row units are whole multiples of the micro-kernel's tile height, column units of its width. */
const ROW_ALIGN = 8;
const COL_ALIGN = 16;
/** Stands in for B in a job whose B is packed (never read; shared, so posting it copies nothing). */
const NO_B = new Float32Array(new SharedArrayBuffer(0));

/** Counters for tests and benchmarks (monotonic; never reset by the library). */
export const gemmParallelStats = {
  /** Calls of gemmParallel / gemmBatchParallel. */
  calls: 0,
  /** Calls that were split over threads. */
  parallelCalls: 0,
  /** Units run, and of those, units run on worker threads. */
  units: 0,
  workerUnits: 0,
  /** Copies of B made into shared memory (cache misses). */
  bCopies: 0,
};

/** Stops the CPU backend's worker threads (idle-unref'd anyway; for tests and clean shutdown). */
export function closeGemmWorkers(): Promise<void> {
  return cpuPool.close();
}

/**
 * Starts the worker threads now (each replies once loaded) instead of on the first large GEMM, whose
 * workers would otherwise still be starting while the caller does all of the work itself.
 */
export async function warmGemmWorkers(threads = cpuThreads()): Promise<void> {
  const job: GemmJob = {
    problems: [],
    byColumns: [],
    step: [],
    starts: [0],
    control: newControlArray(),
    js: false,
  };
  await Promise.all(
    Array.from({ length: Math.max(0, threads - 1) }, (_, i) => cpuPool.post(i, { kind: "gemm", job })),
  );
}

function newControlArray(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(16));
}

/** One GEMM, split over the cores when large. */
export function gemmParallel(problem: GemmProblem, opts: GemmParallelOptions = {}): void {
  gemmBatchParallel([problem], opts);
}

/**
 * Several independent GEMMs (the matrices of a batched MatMul) run together on all cores: one hand-off for
 * the whole batch, and operands shared by several problems are copied to shared memory once. The problems'
 * C blocks must not overlap.
 */
export function gemmBatchParallel(problems: GemmProblem[], opts: GemmParallelOptions = {}): void {
  gemmParallelStats.calls++;
  for (const p of problems) fillRowBias(p);
  const flops = problems.reduce((s, p) => s + problemFlops(p), 0);
  const threads = opts.mode === "never" ? 1 : Math.max(1, Math.floor(opts.threads ?? cpuThreads()));
  const js = (opts.kernel ?? defaultGemmKernel()) === "js";
  if (threads <= 1 || flops === 0 || (opts.mode !== "always" && flops < GEMM_PARALLEL_MIN_FLOPS)) {
    for (const p of problems) runProblem(p, js);
    for (const p of problems) applyGemmActivation(p);
    return;
  }
  const shared = shareProblems(problems, js);
  const job = planJob(shared.problems, flops, threads, js);
  const total = job.starts[job.starts.length - 1]!;
  const pool = opts.pool ?? cpuPool;
  const post = (i: number) => pool.post(i, { kind: "gemm", job });
  const workerUnits = runSharedJob(post, job.control, total, threads, (u) => runGemmUnit(job, u), "gemm");
  shared.copyBack();
  for (const p of problems) applyGemmActivation(p);
  gemmParallelStats.parallelCalls++;
  gemmParallelStats.units += total;
  gemmParallelStats.workerUnits += workerUnits;
}

/**
 * The same GEMMs computed entirely on worker threads while the caller awaits: the calling thread stays free
 * for its event loop (a model's large GEMMs take tens of milliseconds). The pool's `threads` workers share
 * the units; whatever a worker that failed to start left unclaimed runs here at the end.
 */
export async function gemmBatchAsync(problems: GemmProblem[], opts: GemmParallelOptions = {}): Promise<void> {
  gemmParallelStats.calls++;
  for (const p of problems) fillRowBias(p);
  const flops = problems.reduce((s, p) => s + problemFlops(p), 0);
  const threads = Math.max(1, Math.floor(opts.threads ?? cpuThreads()));
  const js = (opts.kernel ?? defaultGemmKernel()) === "js";
  if (flops === 0) {
    for (const p of problems) runProblem(p, js);
    for (const p of problems) applyGemmActivation(p);
    return;
  }
  // Its own scratch: another run's GEMM may use the caller's shared scratch while this one is in flight.
  const shared = shareProblems(problems, js, new SharedArrayBuffer(0));
  const job = planJob(shared.problems, flops, threads, js);
  const total = job.starts[job.starts.length - 1]!;
  const pool = opts.pool ?? cpuPool;
  const post = (i: number) => pool.post(i, { kind: "gemm", job });
  const workerUnits = await awaitSharedJob(
    post,
    job.control,
    total,
    threads,
    (u) => runGemmUnit(job, u),
    "gemm",
  );
  shared.copyBack();
  for (const p of problems) applyGemmActivation(p);
  gemmParallelStats.parallelCalls++;
  gemmParallelStats.units += total;
  gemmParallelStats.workerUnits += workerUnits;
}

function problemFlops(p: GemmProblem): number {
  return p.M > 0 && p.N > 0 && p.K > 0 ? 2 * p.M * p.N * p.K : 0;
}

function runProblem(p: GemmProblem, js: boolean): void {
  gemmFast(p, p.packedB ?? (js ? undefined : packedB(p)), !js);
}

/**
 * The cached packed panels of an immutable B (undefined for any other B, a tiny problem, or no wasm). The
 * packed copy counts as a copy of B in gemmParallelStats.bCopies.
 */
function packedB(p: GemmProblem): Float32Array | undefined {
  if (!isImmutable(p.B) || p.M * p.N * p.K < GEMM_WASM_MIN_MACS || !wasmGemmAvailable()) return undefined;
  const misses = gemmWasmStats.packedBCopies;
  const packed = cachedPackedB(p.transB, p.K, p.N, p.B, p.bOffset, p.ldb);
  gemmParallelStats.bCopies += gemmWasmStats.packedBCopies - misses;
  return packed;
}

function planJob(problems: GemmProblem[], flops: number, threads: number, js: boolean): GemmJob {
  const unitFlops = Math.max(MIN_UNIT_FLOPS, flops / (threads * UNITS_PER_THREAD));
  const byColumns: boolean[] = [];
  const step: number[] = [];
  const starts = [0];
  for (const p of problems) {
    const cols = p.N > p.M;
    const extent = cols ? p.N : p.M;
    const align = cols ? COL_ALIGN : ROW_ALIGN;
    const want = Math.max(1, Math.round(problemFlops(p) / unitFlops));
    const size = Math.max(align, Math.ceil(extent / want / align) * align);
    byColumns.push(cols);
    step.push(size);
    starts.push(starts[starts.length - 1]! + (extent > 0 ? Math.ceil(extent / size) : 0));
  }
  return { problems, byColumns, step, starts, control: newControlArray(), js };
}

/** Runs unit `unit` of a job: `gemm` on one block of rows or columns of one problem's C. */
export function runGemmUnit(job: GemmJob, unit: number): void {
  let i = 0;
  while (unit >= job.starts[i + 1]!) i++;
  const p = job.problems[i]!;
  const size = job.step[i]!;
  const start = (unit - job.starts[i]!) * size;
  if (job.byColumns[i]) {
    const n = Math.min(size, p.N - start);
    const bOffset = p.bOffset + (p.transB ? start * p.ldb : start);
    // Units start at multiples of COL_ALIGN columns, so their panels are a suffix of the packed panels.
    gemmFast({ ...p, N: n, bOffset, cOffset: p.cOffset + start }, p.packedB?.subarray(start * p.K), !job.js);
  } else {
    const m = Math.min(size, p.M - start);
    const aOffset = p.aOffset + (p.transA ? start : start * p.lda);
    gemmFast({ ...p, M: m, aOffset, cOffset: p.cOffset + start * p.ldc }, p.packedB, !job.js);
  }
}

// ---- Shared memory -------------------------------------------------------------------------------------

function isShared(a: Float32Array): boolean {
  return a.buffer instanceof SharedArrayBuffer;
}

/**
 * The calling thread's reusable shared scratch for copies of A and C. Safe to reuse: a parallel call returns
 * only after every unit is done, and a worker that picks up a finished job finds no unit left to claim.
 */
let scratch = new SharedArrayBuffer(0);

function scratchViews(lengths: number[], own?: SharedArrayBuffer): Float32Array[] {
  const total = lengths.reduce((s, n) => s + n, 0);
  let buffer = own ?? scratch;
  if (buffer.byteLength < total * 4) {
    buffer = new SharedArrayBuffer(Math.ceil(total * 1.25) * 4);
    if (!own) scratch = buffer;
  }
  let at = 0;
  return lengths.map((n) => {
    const view = new Float32Array(buffer, at * 4, n);
    at += n;
    return view;
  });
}

/** Shared copies of immutable B operands (weights), keyed by the source array: copied once. */
const sharedB = new WeakMap<Float32Array, Float32Array>();

/**
 * A shared copy of B. Only arrays the engine marked immutable (initializers) are cached; anything else
 * — a feed buffer the caller may rewrite between runs — goes through the per-call scratch like A.
 */
function cachedSharedB(src: Float32Array): Float32Array | undefined {
  if (isShared(src)) return src;
  if (!isImmutable(src)) return undefined;
  let copy = sharedB.get(src);
  if (!copy) {
    copy = new Float32Array(new SharedArrayBuffer(src.byteLength));
    copy.set(src);
    sharedB.set(src, copy);
    gemmParallelStats.bCopies++;
  }
  return copy;
}

/**
 * The problems with every array in shared memory, and how to copy the results back. Copies go into the
 * caller's reusable scratch, or into `own` (grown as needed) for a job that may overlap another.
 */
function shareProblems(
  problems: GemmProblem[],
  js: boolean,
  own?: SharedArrayBuffer,
): { problems: GemmProblem[]; copyBack(): void } {
  // A and C arrays to copy into the scratch buffer, each once even when several problems use it.
  const scratchSources: Float32Array[] = [];
  const index = new Map<Float32Array, number>();
  const need = (a: Float32Array) => {
    if (!isShared(a) && !index.has(a)) {
      index.set(a, scratchSources.length);
      scratchSources.push(a);
    }
  };
  const cachedB = new Map<Float32Array, Float32Array>();
  const packed = problems.map((p) => p.packedB ?? (js ? undefined : packedB(p)));
  problems.forEach((p, i) => {
    need(p.A);
    need(p.C);
    if (packed[i]) return;
    const b = cachedSharedB(p.B);
    if (b) cachedB.set(p.B, b);
    else need(p.B);
  });
  const views = scratchViews(
    scratchSources.map((a) => a.length),
    own,
  );
  for (let i = 0; i < scratchSources.length; i++) views[i]!.set(scratchSources[i]!);
  const share = (a: Float32Array) => (isShared(a) ? a : views[index.get(a)!]!);
  const outputs = new Set<Float32Array>();
  const shared = problems.map((q, i): GemmProblem => {
    // The residual is added here after the job (applyGemmActivation): workers never read it, so it is not sent.
    const { residual: _residual, ...p } = q;
    if (!isShared(p.C)) outputs.add(p.C);
    const packedB = packed[i];
    if (packedB) return { ...p, A: share(p.A), B: NO_B, C: share(p.C), packedB };
    return { ...p, A: share(p.A), B: cachedB.get(p.B) ?? share(p.B), C: share(p.C) };
  });
  return {
    problems: shared,
    copyBack() {
      for (const c of outputs) c.set(views[index.get(c)!]!);
    },
  };
}
