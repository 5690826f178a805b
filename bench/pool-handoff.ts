/**
 * How long the native thread pool takes to hand work to its threads (issue 9: "a native thread pool that hands
 * work off in microseconds"; the WebAssembly kernels' worker-thread hand-off costs 11–12 µs). A job is one task
 * per pool thread, each waiting until all have started, so every worker takes part; timed from the call to
 * its return, in the addon (NativeKernels.measureHandoff). Two cases per thread count: back to back (the
 * workers spin between jobs, as between a model run's kernels) and after a pause longer than the pool's spin
 * window (300 µs; the workers sleep on a condition variable and must be woken).
 *
 *   node --import tsx bench/pool-handoff.ts [--threads 1,2] [--jobs 5000] [--pause-us 2000] [--json]
 */
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { nativeKernels } from "../src/backends/cpu/native/index.js";
import { benchArgs } from "./cli-args.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      threads: { type: "string", default: "1,2" },
      jobs: { type: "string", default: "5000" },
      "pause-us": { type: "string", default: "2000" },
      json: { type: "boolean", default: false },
    },
  }),
);
const nk = nativeKernels();
if (!nk) throw new Error("bench/pool-handoff.ts needs the native addon: npm run build:native");
const jobs = Number(values.jobs);
const pause = Number(values["pause-us"]);

const rows = values
  .threads!.split(",")
  .map(Number)
  .map((threads) => {
    nk.setThreads(threads);
    nk.measureHandoff(200, 0); // threads started and warm
    const spinning = nk.measureHandoff(jobs, 0);
    // Fewer jobs after a pause: each costs the pause itself.
    const waking = nk.measureHandoff(Math.max(20, Math.min(500, Math.floor(jobs / 10))), pause);
    return { threads, spinning, waking };
  });

if (values.json)
  console.log(JSON.stringify({ machine: cpus()[0]?.model, node: process.version, pause, rows }));
else {
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, node ${process.version}; µs per hand-off`,
  );
  console.log("threads   back to back: median   p90   after a pause of", pause, "µs: median   p90");
  for (const r of rows)
    console.log(
      `${String(r.threads).padStart(7)}   ${r.spinning.medianUs.toFixed(2).padStart(20)} ${r.spinning.p90Us.toFixed(2).padStart(6)}` +
        `   ${r.waking.medianUs.toFixed(1).padStart(35)} ${r.waking.p90Us.toFixed(1).padStart(8)}`,
    );
}
