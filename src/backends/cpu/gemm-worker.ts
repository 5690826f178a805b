/** Worker thread entry for parallel GEMM: runs units of the jobs the main thread posts. */
import { parentPort } from "node:worker_threads";
import { type GemmJob, runGemmUnit } from "./gemm-parallel.js";
import { drainUnits } from "./shared-job.js";
import type { WorkerReply, WorkerRequest } from "./thread-pool.js";

parentPort?.on("message", ({ id, payload }: WorkerRequest<GemmJob>) => {
  const total = payload.starts[payload.starts.length - 1]!;
  const failure = drainUnits(payload.control, total, (unit) => runGemmUnit(payload, unit));
  parentPort!.postMessage({ id, error: failure?.message } satisfies WorkerReply);
});
