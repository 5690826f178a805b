/**
 * Where the host time of a steady-state (replayed) WebGPU run goes: BERT-base fused, one shape, warm-up, then
 * timed runs; wall time per run, and with `node --cpu-prof` the JS profile of the timed loop. For the H200
 * (issue 10: a [1,128] run's GPU works ~3.7 ms of its wall time).
 *
 *   node --cpu-prof --cpu-prof-dir=DIR --import tsx bench/gpu-host-profile.ts [--shape 1x128] [--runs 200]
 *   [--precision fp16] [--no-replay] [--phases] [--tiny | --layers N --hidden N --heads N --ffn N --vocab N]
 *   --phases  also the median of each phase of a replayed run: host work until the submit, the wait until the
 *             outputs are mapped (GPU work), the copy out, and the wall time outside the replay (the session's
 *             feed checks and plan lookup before it, wrapping the outputs after it)
 */
import { parseArgs } from "node:util";
import { onReplayPhases, type ReplayPhases } from "../src/backends/webgpu/graph/replay-plan.js";
import { InferenceSession } from "../src/engine/session.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { benchArgs } from "./cli-args.js";
import { benchConfig } from "./gpu-fp16.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      shape: { type: "string", default: "1x128" },
      runs: { type: "string", default: "200" },
      precision: { type: "string", default: "fp32" },
      "no-replay": { type: "boolean", default: false },
      phases: { type: "boolean", default: false },
      // The model: BERT-base, or benchConfig's overrides (read from argv there).
      tiny: { type: "boolean", default: false },
      layers: { type: "string" },
      hidden: { type: "string" },
      heads: { type: "string" },
      ffn: { type: "string" },
      vocab: { type: "string" },
    },
  }),
);
const [B, S] = values.shape!.split("x").map(Number) as [number, number];
const cfg = benchConfig();
const graph = buildBertGraph(cfg);
const session = await InferenceSession.fromGraph(graph, {
  executionProviders: ["webgpu"],
  precision: values.precision as "fp32" | "fp16",
  replay: !values["no-replay"],
});
const feeds = bertInputs(Array(B).fill(S), S, cfg.vocab);
for (let i = 0; i < 10; i++) await session.run(feeds);
const phases: ReplayPhases[] = [];
if (values.phases) onReplayPhases((p) => phases.push(p));
const times: number[] = [];
// Per run: wall time less the replay's phases — the session's own work around the replay (feed checks, the
// plan lookup, wrapping the outputs) and the promise hops.
const outside: number[] = [];
for (let i = 0; i < Number(values.runs); i++) {
  const before = phases.length;
  const t0 = performance.now();
  await session.run(feeds);
  const wall = performance.now() - t0;
  times.push(wall);
  const p = phases[before];
  if (phases.length === before + 1 && p) outside.push(wall - p.hostMs - p.waitMs - p.copyMs);
}
times.sort((a, b) => a - b);
const q = (p: number) => times[Math.floor(p * (times.length - 1))]!.toFixed(2);
console.log(
  `BERT ${cfg.layers}x${cfg.hidden} [${B},${S}] ${values.precision}${values["no-replay"] ? ", no replay" : ""}: ` +
    `median ${q(0.5)} ms (p10 ${q(0.1)}, p90 ${q(0.9)}) over ${times.length} runs`,
);
if (phases.length > 0) {
  const med = (k: keyof ReplayPhases) => {
    const xs = phases.map((p) => p[k]).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!.toFixed(2);
  };
  console.log(
    `replayed runs (${phases.length}), median ms: host until submit ${med("hostMs")}, submit until the ` +
      `outputs are mapped ${med("waitMs")}, copy out ${med("copyMs")}, outside the replay ` +
      `${outside.sort((a, b) => a - b)[Math.floor(outside.length / 2)]?.toFixed(2)}`,
  );
}
await session.release();
