/** Worker thread entry of the CPU pool (pool.ts): runs units of the GEMM, attention and map jobs it is sent. */
import { parentPort } from "node:worker_threads";
import { Scratch } from "./attention-kernel.js";
import { drainUnits as drainAttentionUnits } from "./attention-units.js";
import { runGemmUnit } from "./gemm-parallel.js";
import { mapUnits, runMapUnit } from "./map-parallel.js";
import type { CpuTask } from "./pool.js";
import { drainUnits } from "./shared-job.js";
import type { WorkerReply, WorkerRequest } from "./thread-pool.js";

const scratch = new Scratch();

function runTask(task: CpuTask): Error | undefined {
  switch (task.kind) {
    case "gemm": {
      const { job } = task;
      return drainUnits(job.control, job.starts[job.starts.length - 1]!, (unit) => runGemmUnit(job, unit));
    }
    case "attention":
      return drainAttentionUnits(task.job, scratch);
    case "map":
      return drainUnits(task.job.control, mapUnits(task.job), (unit) => runMapUnit(task.job, unit));
  }
}

parentPort?.on("message", ({ id, payload }: WorkerRequest<CpuTask>) => {
  const failure = runTask(payload);
  parentPort!.postMessage({ id, error: failure?.message } satisfies WorkerReply);
});
