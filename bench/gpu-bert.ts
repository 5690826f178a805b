/**
 * BERT-base on the GPU, one process, interleaved: mhafuse-webgpu fused, mhafuse-webgpu unfused and
 * onnxruntime-node's WebGPU provider on the same ONNX model (src/models/bert.ts, saved to a temp file) and the
 * same feeds. Per shape: warm-up, then rounds that run each engine once in turn; median wall latency,
 * TFLOP/s, ratio to onnxruntime. For the GPU machine (issue 10): `npm run bench:gpu [-- --reps 10]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import type { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModelFile } from "../src/onnx/index.js";
import {
  benchConfig,
  fp16CheckLines,
  fp16Engines,
  fp16Fallbacks,
  releaseFp16,
  torchLines,
} from "./gpu-fp16.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const REPS = Number(arg("reps", "10"));
const WARMUP = Number(arg("warmup", "3"));
const SHAPES = arg("shapes", "1x128,8x128,32x128,1x512")
  .split(",")
  .map((s) => s.split("x").map(Number) as [number, number]);
const FP32_PEAK = 67; // TFLOP/s, H200 SXM datasheet

const cfg = benchConfig();
/** Encoder flops of one batch: the projections and FFN GEMMs plus the two attention matmuls. */
function flops(B: number, S: number): number {
  const H = cfg.hidden;
  const perLayer = 2 * B * S * (4 * H * H + 2 * H * cfg.ffn) + 4 * B * S * S * H;
  return cfg.layers * perLayer;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), "mhafuse-gpu-bert-"));
const path = join(dir, "bert-base.onnx");
const graph = buildBertGraph(cfg);
saveModelFile(modelFromGraph(graph), path);

const fused = await InferenceSession.create(path, { executionProviders: ["webgpu"] });
const unfused = await InferenceSession.create(path, {
  executionProviders: ["webgpu"],
  graphOptimizationLevel: "disabled",
});
const ortSession = await ort.InferenceSession.create(path, { executionProviders: ["webgpu"] });
console.log(`node ${process.version}, ${new Date().toISOString()}, reps ${REPS}, warmup ${WARMUP}`);
console.log(`fused: ${fused.attentionReport.filter((b) => b.fused).length} attention blocks fused`);

type Feeds = Record<string, Tensor>;
const toOrt = (f: Feeds) =>
  Object.fromEntries(
    Object.entries(f).map(([k, t]) => [k, new ort.Tensor("int64", t.data as BigInt64Array, t.dims)]),
  );

const engines: { name: string; run: (f: Feeds, o: Record<string, ort.Tensor>) => Promise<unknown> }[] = [
  { name: "mhafuse-webgpu fused", run: (f) => fused.run(f) },
  { name: "mhafuse-webgpu unfused", run: (f) => unfused.run(f) },
  { name: "onnxruntime webgpu", run: (_f, o) => ortSession.run(o) },
];
const fp16 = await fp16Engines(path);
engines.push(...fp16);

for (const [B, S] of SHAPES) {
  const feeds = bertInputs(Array(B).fill(S), S, cfg.vocab) as unknown as Feeds;
  const ortFeeds = toOrt(feeds);
  for (const e of engines) for (let i = 0; i < WARMUP; i++) await e.run(feeds, ortFeeds);
  const times = engines.map(() => [] as number[]);
  for (let r = 0; r < REPS; r++)
    for (const [k, e] of engines.entries()) {
      const t0 = performance.now();
      await e.run(feeds, ortFeeds);
      times[k]!.push(performance.now() - t0);
    }
  const ortMs = median(times[2]!);
  for (const [k, e] of engines.entries()) {
    const ms = median(times[k]!);
    const tf = flops(B, S) / (ms * 1e-3) / 1e12;
    console.log(
      `[${B},${S}] ${e.name.padEnd(24)} ${ms.toFixed(2).padStart(8)} ms  ${tf.toFixed(2).padStart(6)} TFLOP/s ` +
        `(${((100 * tf) / FP32_PEAK).toFixed(1)}% of fp32 peak)  ${(ms / ortMs).toFixed(2)}x onnxruntime`,
    );
  }
  for (const line of await fp16CheckLines(B, S, fused, fp16, feeds)) console.log(line);
  for (const line of torchLines(B, S, fp16.length ? median(times[3]!) : undefined, flops(B, S)))
    console.log(line);
}
for (const { name, f } of fp16Fallbacks(fp16))
  console.log(`${name}: ${f.op} '${f.node}' fell back to the CPU (${f.reason})`);
await releaseFp16(fp16);
for (const [name, s] of [
  ["fused", fused],
  ["unfused", unfused],
] as const)
  for (const f of s.fallbacks())
    console.log(`${name}: ${f.op} '${f.node}' fell back to the CPU (${f.reason})`);
await fused.release();
await unfused.release();
await ortSession.release();
rmSync(dir, { recursive: true, force: true });
