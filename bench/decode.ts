// Per-token decoding latency with a KV cache: the llama_past fixture (2-layer Llama, GQA 4:2, rotary, hidden
// 64) at past lengths 128, 512 and 2048 — mhafuse fused, mhafuse unfused and onnxruntime-node (CPU), same feeds,
// one process, interleaved, median of N.
//   node --import tsx bench/decode.ts [--reps N] [--json]
import { cpus } from "node:os";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import { Tensor } from "../src/ir/tensor.js";
import { seededRandom } from "../src/models/random.js";
import { benchArgs } from "./cli-args.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

const MODEL = new URL("../../shared/fixtures/onnx/llama_past.onnx", import.meta.url).pathname;
const args = process.argv.slice(2);
const reps = Number(args[args.indexOf("--reps") + 1] ?? 0) || 15;
const json = args.includes("--json");

function feeds(past: number): Record<string, Tensor> {
  const rand = seededRandom(past);
  const kv = () =>
    new Tensor(
      "float32",
      Float32Array.from({ length: 2 * past * 16 }, () => rand() * 2 - 1),
      [1, 2, past, 16],
    );
  const f: Record<string, Tensor> = {
    input_ids: new Tensor("int64", [7], [1, 1]),
    attention_mask: new Tensor("int64", new Array(past + 1).fill(1), [1, past + 1]),
  };
  for (const l of [0, 1]) for (const k of ["key", "value"]) f[`past_${k}_${l}`] = kv();
  return f;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const fused = await InferenceSession.create(MODEL, { graphOptimizationLevel: "all" });
const plain = await InferenceSession.create(MODEL, { graphOptimizationLevel: "disabled" });
const reference = await ort.InferenceSession.create(MODEL);
const rows: { past: number; fused: number; unfused: number; onnxruntime: number }[] = [];
for (const past of [128, 512, 2048]) {
  const f = feeds(past);
  const of = Object.fromEntries(
    Object.entries(f).map(([k, t]) => [
      k,
      new ort.Tensor(t.type as "float32", t.data as Float32Array, [...t.dims]),
    ]),
  );
  const engines: [string, () => Promise<unknown>][] = [
    ["fused", () => fused.run(f)],
    ["unfused", () => plain.run(f)],
    ["onnxruntime", () => reference.run(of)],
  ];
  const times = new Map<string, number[]>(engines.map(([n]) => [n, []]));
  for (let r = -3; r < reps; r++)
    for (const [name, run] of engines) {
      const t0 = performance.now();
      await run();
      if (r >= 0) times.get(name)!.push(performance.now() - t0);
    }
  rows.push({
    past,
    fused: median(times.get("fused")!),
    unfused: median(times.get("unfused")!),
    onnxruntime: median(times.get("onnxruntime")!),
  });
}
fused.release?.();
plain.release?.();
if (json) console.log(JSON.stringify({ machine: cpus()[0]?.model, rows }, null, 2));
else {
  console.log(
    `llama_past per-token latency, median of ${reps} (ms) — ${cpus().length} × ${cpus()[0]?.model}`,
  );
  console.log("past   fused  unfused  onnxruntime  fused/ort");
  for (const r of rows)
    console.log(
      `${String(r.past).padStart(4)} ${r.fused.toFixed(2).padStart(7)} ${r.unfused.toFixed(2).padStart(8)} ${r.onnxruntime.toFixed(2).padStart(12)} ${(r.fused / r.onnxruntime).toFixed(2).padStart(10)}`,
    );
}
