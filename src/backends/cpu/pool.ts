/**
 * The CPU backend's one thread pool: GEMM, attention and elementwise jobs all go to the same workers
 * (cpu-worker.ts), so a process never runs more compute threads than it was given.
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

export const cpuPool = new ThreadPool<CpuTask>(siblingModule(import.meta.url, "cpu-worker"));
