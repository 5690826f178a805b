/**
 * The CPU backend's thread pool: GEMM, attention and elementwise jobs all go to the same workers
 * (cpu-worker.ts), so a backend never runs more compute threads than it was given. Each CpuBackend owns
 * one (released with it); library calls without a backend (gemmParallel, runAttentionProblems…) share the
 * process-wide `cpuPool`.
 */
import type { UnitJob } from "./attention-units.js";
import type { GemmJob } from "./gemm-parallel.js";
import type { MapJob } from "./map-parallel.js";
import { siblingModule, ThreadPool } from "./thread-pool.js";

/** What a worker is asked to do: claim and run units of one job until none is left. */
export type CpuTask =
  | { kind: "gemm"; job: GemmJob }
  | { kind: "attention"; job: UnitJob }
  | { kind: "map"; job: MapJob };

const WORKER_SCRIPT = siblingModule(import.meta.url, "cpu-worker");

export function newCpuPool(): ThreadPool<CpuTask> {
  return new ThreadPool<CpuTask>(WORKER_SCRIPT);
}

/** The pool of library calls made without a backend. */
export const cpuPool = newCpuPool();
