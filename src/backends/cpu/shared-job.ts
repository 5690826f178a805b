/**
 * The generic part of a synchronous parallel run over shared memory, as the attention code does it: threads
 * (the caller and the workers alike) claim numbered units from a counter in a shared Int32Array, count every
 * unit they finish, and the caller blocks with Atomics.wait until all are done. The job-specific part is only
 * "run unit u". Jobs that count more (attention's wasm units) append slots after CONTROL_SLOTS.
 */
import { isMainThread } from "node:worker_threads";
import { MhafuseError } from "../../errors.js";

/** Indices into the shared Int32Array that coordinates one parallel run. */
export const NEXT_UNIT = 0;
export const UNITS_DONE = 1;
export const FAILED = 2;
/** Units run by worker threads (not the caller): lets tests and benchmarks see that workers took part. */
export const WORKER_UNITS = 3;
export const CONTROL_SLOTS = 4;

/** A wait gives up when no unit finishes for this long: a worker died mid-unit. */
export const STALL_TIMEOUT_MS = 60_000;

/** A fresh control array: [next unclaimed unit, units finished, failure flag, units run by workers]. */
export function newControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
}

/**
 * Claims and runs units until none of `total` is left. Every claimed unit is counted as done even when it
 * throws, so a waiting thread never hangs; the failure flag tells it the output is incomplete. Returns the
 * error, if any.
 */
export function drainUnits(
  control: Int32Array,
  total: number,
  runUnit: (unit: number) => void,
): Error | undefined {
  let failure: Error | undefined;
  for (;;) {
    const unit = Atomics.add(control, NEXT_UNIT, 1);
    if (unit >= total) break;
    try {
      if (!failure) runUnit(unit);
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      Atomics.store(control, FAILED, 1);
    }
    if (!isMainThread) Atomics.add(control, WORKER_UNITS, 1);
    if (Atomics.add(control, UNITS_DONE, 1) + 1 === total) Atomics.notify(control, UNITS_DONE);
  }
  return failure;
}

/** Blocks the calling thread until `total` units are done; throws when none finishes for `stallMs`. */
export function waitForUnits(
  control: Int32Array,
  total: number,
  what: string,
  stallMs = STALL_TIMEOUT_MS,
): void {
  let seen = Atomics.load(control, UNITS_DONE);
  let lastProgress = Date.now();
  while (seen < total) {
    Atomics.wait(control, UNITS_DONE, seen, 100);
    const now = Atomics.load(control, UNITS_DONE);
    if (now !== seen) {
      seen = now;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > stallMs) {
      throw new MhafuseError(`${what}: a worker thread stopped responding`, { code: "WORKER_FAILED" });
    }
  }
}

/** Hands the job to worker `index` of the pool; resolves when that worker has no unit left to claim. */
export type PostToWorker = (index: number) => Promise<void>;

/**
 * Runs a job of `total` units synchronously on `threads` threads: posts the job (whose control array is
 * `control`) to threads − 1 workers, drains units here too, then waits for the rest. Workers still starting
 * claim nothing once the caller has taken every unit, so a cold pool costs no wait. Returns the number of
 * units that ran on workers.
 */
export function runSharedJob(
  post: PostToWorker,
  control: Int32Array,
  total: number,
  threads: number,
  runUnit: (unit: number) => void,
  what: string,
): number {
  // Replies are only read once this thread is free again; failures show up in the shared FAILED flag.
  for (let i = 0; i < threads - 1; i++) post(i).catch(() => undefined);
  const own = drainUnits(control, total, runUnit);
  waitForUnits(control, total, what);
  if (own) throw own;
  if (Atomics.load(control, FAILED))
    throw new MhafuseError(`${what}: a worker thread failed`, { code: "WORKER_FAILED" });
  return Atomics.load(control, WORKER_UNITS);
}

/**
 * Runs a job of `total` units on `threads` workers while the caller awaits (its thread stays free for its
 * event loop), then drains here whatever a worker that failed to start left unclaimed. Throws when a unit
 * failed. Returns the number of units that ran on workers.
 */
export async function awaitSharedJob(
  post: PostToWorker,
  control: Int32Array,
  total: number,
  threads: number,
  runUnit: (unit: number) => void,
  what: string,
): Promise<number> {
  const replies = await Promise.allSettled(Array.from({ length: threads }, (_, i) => post(i)));
  const own = drainUnits(control, total, runUnit);
  if (own) throw own;
  if (Atomics.load(control, UNITS_DONE) < total || Atomics.load(control, FAILED)) {
    const rejected = replies.find((r): r is PromiseRejectedResult => r.status === "rejected");
    const why = rejected ? `: ${(rejected.reason as Error).message}` : "";
    throw new MhafuseError(`${what}: a worker thread failed${why}`);
  }
  return Atomics.load(control, WORKER_UNITS);
}
