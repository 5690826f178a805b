/**
 * Attention over worker threads. Inputs are moved to SharedArrayBuffers (once; arrays already shared are
 * used in place), every thread claims (batch, head, row-block) units from a shared counter and writes its
 * rows of the shared output directly — no result copies between threads.
 *
 * Two ways to wait: `runAttentionProblems` blocks the calling thread with Atomics.wait while it works
 * alongside the workers (ops run synchronously inside the executor), `attentionParallel` awaits replies.
 */
import { MhafuseError } from "../../errors.js";
import type { AttentionArgs } from "../../ops/attention-args.js";
import {
  type AttentionKernel,
  attentionCore,
  attentionFlops,
  Scratch,
  useWasmKernel,
  validateAttentionArgs,
} from "./attention-kernel.js";
import {
  CONTROL_SLOTS,
  drainUnits,
  FAILED,
  UNITS_DONE,
  type UnitJob,
  unitRunner,
  unitStarts,
  WASM_UNITS,
  WORKER_UNITS,
} from "./attention-units.js";
import { beginAttentionJob, endAttentionJob } from "./attention-wasm.js";
import { type CpuTask, cpuPool } from "./pool.js";
import { runSharedJob } from "./shared-job.js";
import { cpuThreads, type ThreadPool } from "./thread-pool.js";

export interface ParallelOptions {
  /** Threads to use, the caller included (default: all cores, or MHAFUSE_THREADS). */
  threads?: number;
  /** Query rows per work unit. */
  rowsPerUnit?: number;
  /** "auto" (default) stays single-threaded for problems too small to repay the hand-off. */
  mode?: "auto" | "always" | "never";
  /** "auto" (default): the WebAssembly SIMD kernel where available; "js": the plain-JS kernel. */
  kernel?: AttentionKernel;
  /** The workers to use (default: the process-wide CPU pool; a CPU backend passes its own). */
  pool?: ThreadPool<CpuTask>;
}

/**
 * How a run was shared out; `workerUnits` of `units` ran off the calling thread, `wasmUnits` on the
 * WebAssembly SIMD kernel (a single-thread run counts as one unit).
 */
export interface ParallelRunStats {
  units: number;
  workerUnits: number;
  wasmUnits: number;
  threads: number;
}

/** Below this many flops, a thread hand-off (~0.1 ms, first start ~100 ms) costs more than it saves. */
export const PARALLEL_MIN_FLOPS = 2e7;
const DEFAULT_ROWS_PER_UNIT = 32;

const mainScratch = new Scratch();

/** Stops the attention worker threads (they are idle-unref'd anyway; for tests and clean shutdown). */
export function closeAttentionWorkers(): Promise<void> {
  return cpuPool.close();
}

function shareable(a: Float32Array): boolean {
  return a.buffer instanceof SharedArrayBuffer;
}

/** Copies of the problems whose arrays all live in shared memory, and how to copy outputs back. */
function shareProblems(problems: AttentionArgs[]): { problems: AttentionArgs[]; copyBack(): void } {
  const copies = new Map<Float32Array, Float32Array>();
  const share = (a: Float32Array): Float32Array => {
    if (shareable(a)) return a;
    let c = copies.get(a);
    if (!c) {
      c = new Float32Array(new SharedArrayBuffer(a.byteLength));
      c.set(a);
      copies.set(a, c);
    }
    return c;
  };
  const shared = problems.map(
    (a): AttentionArgs => ({
      ...a,
      q: share(a.q),
      k: share(a.k),
      v: share(a.v),
      out: share(a.out),
      bias: a.bias ? { ...a.bias, data: share(a.bias.data) } : undefined,
      keyLengths: a.keyLengths ? Array.from(a.keyLengths) : undefined,
      queryLengths: a.queryLengths ? Array.from(a.queryLengths) : undefined,
    }),
  );
  return {
    problems: shared,
    copyBack() {
      for (const a of problems) if (!shareable(a.out)) a.out.set(copies.get(a.out)!);
    },
  };
}

function newJob(
  problems: AttentionArgs[],
  rowsPerUnit: number,
  kernel?: AttentionKernel,
): { job: UnitJob; total: number } {
  const job: UnitJob = {
    problems,
    rowsPerUnit,
    kernel,
    control: new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4)),
  };
  const starts = unitStarts(job);
  return { job, total: starts[starts.length - 1]! };
}

function totalFlops(problems: AttentionArgs[]): number {
  return problems.reduce((s, a) => s + attentionFlops(a), 0);
}

function threadsFor(problems: AttentionArgs[], opts: ParallelOptions): number {
  if (opts.mode === "never") return 1;
  const threads = Math.max(1, Math.floor(opts.threads ?? cpuThreads()));
  if (opts.mode !== "always" && totalFlops(problems) < PARALLEL_MIN_FLOPS) return 1;
  return threads;
}

/**
 * Runs several attention problems (e.g. the sequences of a var-seqlen batch) to completion on all cores,
 * synchronously: the calling thread takes units too and then blocks until the workers finish theirs.
 */
export function runAttentionProblems(
  problems: AttentionArgs[],
  opts: ParallelOptions = {},
): ParallelRunStats {
  if (capturing) {
    capturing.push(...problems);
    return { units: 0, workerUnits: 0, wasmUnits: 0, threads: 0 };
  }
  for (const a of problems) validateAttentionArgs(a);
  const threads = threadsFor(problems, opts);
  if (threads <= 1) {
    for (const a of problems) attentionCore(a, opts.kernel);
    return {
      units: problems.length,
      workerUnits: 0,
      wasmUnits: useWasmKernel(opts.kernel) ? problems.length : 0,
      threads: 1,
    };
  }
  const shared = shareProblems(problems);
  const { job, total } = newJob(shared.problems, opts.rowsPerUnit ?? DEFAULT_ROWS_PER_UNIT, opts.kernel);
  const { run } = unitRunner(job, mainScratch);
  // Inside the job, packed keys and values are reused across this thread's units.
  beginAttentionJob();
  let workerUnits: number;
  try {
    const post = (i: number) => (opts.pool ?? cpuPool).post(i, { kind: "attention", job });
    workerUnits = runSharedJob(post, job.control, total, threads, run, "attention");
  } finally {
    endAttentionJob();
  }
  shared.copyBack();
  return { units: total, workerUnits, wasmUnits: Atomics.load(job.control, WASM_UNITS), threads };
}

/** Problems recorded instead of run while `captureAttentionProblems` runs its callback. */
let capturing: AttentionArgs[] | undefined;

/**
 * Runs `fn` with every `runAttentionProblems` call inside it recorded instead of run, and returns what `fn`
 * returned plus the problems: the caller then runs them with `attentionProblemsAsync`, off its thread. For
 * code that builds its problems and runs them in one synchronous call (the packed-QKV op,
 * src/attention/qkv-to-context.ts), whose result must only be read after the problems ran. `fn` is
 * synchronous, so no other code can run while the capture is on.
 */
export function captureAttentionProblems<T>(fn: () => T): { result: T; problems: AttentionArgs[] } {
  const outer = capturing;
  const problems: AttentionArgs[] = [];
  capturing = problems;
  try {
    return { result: fn(), problems };
  } finally {
    capturing = outer;
  }
}

/**
 * Several attention problems run to completion on `threads` worker threads while the caller awaits (its
 * event loop stays free); units a worker that failed to start left unclaimed run here at the end.
 */
export async function attentionProblemsAsync(
  problems: AttentionArgs[],
  opts: Pick<ParallelOptions, "threads" | "rowsPerUnit" | "kernel" | "pool"> = {},
): Promise<ParallelRunStats> {
  for (const a of problems) validateAttentionArgs(a);
  const threads = Math.max(1, Math.floor(opts.threads ?? cpuThreads()));
  const shared = shareProblems(problems);
  const { job, total } = newJob(shared.problems, opts.rowsPerUnit ?? DEFAULT_ROWS_PER_UNIT, opts.kernel);
  const replies = await Promise.allSettled(
    Array.from({ length: threads }, (_, i) => (opts.pool ?? cpuPool).post(i, { kind: "attention", job })),
  );
  const own = drainUnits(job, mainScratch);
  if (own) throw own;
  if (Atomics.load(job.control, UNITS_DONE) < total || Atomics.load(job.control, FAILED)) {
    const rejected = replies.find((r): r is PromiseRejectedResult => r.status === "rejected");
    const why = rejected ? `: ${(rejected.reason as Error).message}` : "";
    throw new MhafuseError(`attention: a worker thread failed${why}`);
  }
  shared.copyBack();
  return {
    units: total,
    workerUnits: Atomics.load(job.control, WORKER_UNITS),
    wasmUnits: Atomics.load(job.control, WASM_UNITS),
    threads,
  };
}

/** `attentionCore` split over (batch, head, row block) across worker threads; the caller stays free. */
export async function attentionParallel(
  args: AttentionArgs,
  opts: ParallelOptions = {},
): Promise<ParallelRunStats> {
  validateAttentionArgs(args);
  const threads = Math.max(1, Math.floor(opts.threads ?? cpuThreads()));
  if (opts.mode === "never") {
    attentionCore(args, opts.kernel);
    return { units: 1, workerUnits: 0, wasmUnits: useWasmKernel(opts.kernel) ? 1 : 0, threads: 1 };
  }
  const shared = shareProblems([args]);
  const { job, total } = newJob(shared.problems, opts.rowsPerUnit ?? DEFAULT_ROWS_PER_UNIT, opts.kernel);
  const replies = await Promise.allSettled(
    Array.from({ length: threads }, (_, i) => (opts.pool ?? cpuPool).post(i, { kind: "attention", job })),
  );
  // Workers that could not start claimed nothing: whatever is left runs here.
  const own = drainUnits(job, mainScratch);
  if (own) throw own;
  const rejected = replies.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (Atomics.load(job.control, UNITS_DONE) < total || Atomics.load(job.control, FAILED)) {
    const why = rejected ? `: ${(rejected.reason as Error).message}` : "";
    throw new MhafuseError(`attention: a worker thread failed${why}`, { code: "WORKER_FAILED" });
  }
  shared.copyBack();
  return {
    units: total,
    workerUnits: Atomics.load(job.control, WORKER_UNITS),
    wasmUnits: Atomics.load(job.control, WASM_UNITS),
    threads,
  };
}
