/**
 * Work units for parallel attention: (problem, batch, head, block of query rows). Threads — the caller and
 * the workers alike — claim units from a shared counter, so an uneven mask (short and long sequences in one
 * batch) still spreads evenly over the cores.
 */
import type { AttentionArgs } from "../../ops/attention-args.js";
import {
  type AttentionKernel,
  attentionRows,
  rowBlocks,
  Scratch,
  useWasmKernel,
} from "./attention-kernel.js";
import { beginAttentionJob, endAttentionJob } from "./attention-wasm.js";
import { drainUnits as drainSharedUnits, CONTROL_SLOTS as SHARED_SLOTS } from "./shared-job.js";

export { FAILED, NEXT_UNIT, UNITS_DONE, WORKER_UNITS } from "./shared-job.js";
/** Units run on the WebAssembly SIMD kernel (by any thread): a slot after shared-job's own. */
export const WASM_UNITS = SHARED_SLOTS;
export const CONTROL_SLOTS = SHARED_SLOTS + 1;

export interface UnitJob {
  problems: AttentionArgs[];
  rowsPerUnit: number;
  /** Which kernel every thread runs (default "auto": wasm where available). */
  kernel?: AttentionKernel;
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

/** How many units a job has, and how to run one on this thread (counting wasm-kernel units). */
export function unitRunner(job: UnitJob, scratch: Scratch): { total: number; run: (unit: number) => void } {
  const starts = unitStarts(job);
  const wasm = useWasmKernel(job.kernel);
  return {
    total: starts[starts.length - 1]!,
    run: (unit) => {
      if (wasm) Atomics.add(job.control, WASM_UNITS, 1);
      runUnit(job, starts, unit, scratch, wasm);
    },
  };
}

/**
 * Claims and runs units until none is left (shared-job's loop). Inside the job, the packed keys and values
 * of a (problem, batch, kv head) are reused across its units. Returns the error, if any.
 */
export function drainUnits(job: UnitJob, scratch: Scratch = new Scratch()): Error | undefined {
  const { total, run } = unitRunner(job, scratch);
  beginAttentionJob();
  try {
    return drainSharedUnits(job.control, total, run);
  } finally {
    endAttentionJob();
  }
}
