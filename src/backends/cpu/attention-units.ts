/**
 * Work units for parallel attention: (problem, batch, head, block of query rows). Threads — the caller and
 * the workers alike — claim units from a shared counter, so an uneven mask (short and long sequences in one
 * batch) still spreads evenly over the cores.
 */
import { isMainThread } from "node:worker_threads";
import { type AttentionArgs, attentionRows, rowBlocks, Scratch, useWasmKernel } from "./attention-kernel.js";
import { beginAttentionJob, endAttentionJob } from "./attention-wasm.js";

/** Indices into the shared Int32Array that coordinates one parallel run. */
export const NEXT_UNIT = 0;
export const UNITS_DONE = 1;
export const FAILED = 2;
/** Units run by worker threads (not the caller): lets tests and benchmarks see that workers took part. */
export const WORKER_UNITS = 3;
/** Units run on the WebAssembly SIMD kernel (by any thread). */
export const WASM_UNITS = 4;
export const CONTROL_SLOTS = 5;

export interface UnitJob {
  problems: AttentionArgs[];
  rowsPerUnit: number;
  /** SharedArrayBuffer-backed: [next unclaimed unit, units finished, failure flag, units run by workers, units
   * run on the wasm kernel]. */
  control: Int32Array;
}

/** Units of each problem, as a running prefix: problem p owns units [starts[p], starts[p + 1]). */
export function unitStarts(job: Pick<UnitJob, "problems" | "rowsPerUnit">): number[] {
  const starts = [0];
  for (const a of job.problems)
    starts.push(starts[starts.length - 1]! + a.batch * a.numHeads * rowBlocks(a.seqQ, job.rowsPerUnit));
  return starts;
}

function runUnit(job: UnitJob, starts: number[], unit: number, scratch: Scratch, wasm: boolean): void {
  let p = 0;
  while (unit >= starts[p + 1]!) p++;
  const a = job.problems[p]!;
  const blocks = rowBlocks(a.seqQ, job.rowsPerUnit);
  let local = unit - starts[p]!;
  const block = local % blocks;
  local = (local - block) / blocks;
  const n = local % a.numHeads;
  const b = (local - n) / a.numHeads;
  const r0 = block * job.rowsPerUnit;
  attentionRows(a, b, n, r0, Math.min(a.seqQ, r0 + job.rowsPerUnit), scratch, wasm);
}

/**
 * Claims and runs units until none is left. Every claimed unit is counted as done even when it throws, so
 * a waiting thread never hangs; the failure flag tells it the output is incomplete. Returns the error, if any.
 */
export function drainUnits(job: UnitJob, scratch: Scratch = new Scratch()): Error | undefined {
  const starts = unitStarts(job);
  const total = starts[starts.length - 1]!;
  const { control } = job;
  let failure: Error | undefined;
  const wasm = useWasmKernel();
  // Inside the job, the packed keys and values of a (problem, batch, kv head) are reused across its units.
  beginAttentionJob();
  try {
    for (;;) {
      const unit = Atomics.add(control, NEXT_UNIT, 1);
      if (unit >= total) break;
      try {
        if (!failure) runUnit(job, starts, unit, scratch, wasm);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
        Atomics.store(control, FAILED, 1);
      }
      if (!isMainThread) Atomics.add(control, WORKER_UNITS, 1);
      if (wasm) Atomics.add(control, WASM_UNITS, 1);
      if (Atomics.add(control, UNITS_DONE, 1) + 1 === total) Atomics.notify(control, UNITS_DONE);
    }
  } finally {
    endAttentionJob();
  }
  return failure;
}
