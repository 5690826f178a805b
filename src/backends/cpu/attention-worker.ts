/** Worker thread entry for parallel attention: runs units of the jobs the main thread posts. */
import { parentPort } from "node:worker_threads";
import { Scratch } from "./attention-kernel.js";
import { drainUnits, type UnitJob } from "./attention-units.js";
import type { WorkerReply, WorkerRequest } from "./thread-pool.js";

const scratch = new Scratch();

parentPort?.on("message", ({ id, payload }: WorkerRequest<UnitJob>) => {
  const failure = drainUnits(payload, scratch);
  parentPort!.postMessage({ id, error: failure?.message } satisfies WorkerReply);
});
