/**
 * BERT-base on the GPU, one process, interleaved: mhafuse-webgpu fused, mhafuse-webgpu unfused and
 * onnxruntime-node's WebGPU provider on the same ONNX model (src/models/bert.ts, saved to a temp file) and the
 * same feeds. Per shape: warm-up, then rounds that run each engine once in turn; median wall latency,
 * TFLOP/s, ratio to onnxruntime. Rows: full batches, a padded batch (lengths uniform in S/8..S, seeded; FLOPs
 * counted at the padded shape), the fused attention kernel alone (GPU time from timestamp queries beside wall
 * time), and with --profile the per-kernel GPU time of one whole fused-model run (fp32, and fp16 unless
 * --no-fp16). fp16 rows (bench/gpu-fp16.ts, issue 11): the fused model in precision "fp16", its max |diff| vs
 * fp32, and the PyTorch rows of bench/torch_bert.py --json beside them (--torch FILE). Replay (issue 10): the
 * mhafuse sessions replay their recorded dispatches from the third run of a shape on (warm-up included); the
 * "no replay" rows are the fused fp32 (and fp16) model with `replay: false`, every run node by node, and a
 * `replay:` line per shape says what the last run of each replaying session did (or why it did not replay).
 *
 *   npm run bench:gpu [-- --reps 10 --warmup 3 --profile --torch torch.json]   the H200 run (issues 10, 11)
 *   npm run bench:gpu -- --quick                                 tiny model and shapes (lavapipe)
 *   --tiny  --layers N --hidden N --heads N --ffn N --vocab N --seq S   model / sequence overrides
 *   --shapes 1x128,8x128  --padded 32x128  --profile-shape 32x128  --no-ort  --no-kernels  --no-fp16
 *   --head-to-head   only mhafuse fused fp32 / fp16 and onnxruntime in the interleaved rows
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { robustnessWanted } from "../src/backends/webgpu/device.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { attentionFlops, packedQkvAttention } from "../src/backends/webgpu/kernels/attention.js";
import { planGraph } from "../src/engine/executor.js";
import { InferenceSession } from "../src/engine/session.js";
import type { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { seededRandom } from "../src/models/random.js";
import { modelFromGraph, saveModelFile } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { benchArgs } from "./cli-args.js";
import {
  benchConfig,
  fp16CheckLines,
  fp16Engines,
  fp16Fallbacks,
  QUICK_BERT,
  releaseFp16,
  torchLines,
} from "./gpu-fp16.js";
import { median, profileTable, RAW_TIMESTAMPS, timeKernel } from "./gpu-timing.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

const has = (name: string) => process.argv.includes(`--${name}`);
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const dims = (s: string) => s.split("x").map(Number) as [number, number];
const QUICK = has("quick");
const SEQ = Number(arg("seq", QUICK ? "16" : "128"));
const REPS = Number(arg("reps", QUICK ? "2" : "10"));
const WARMUP = Number(arg("warmup", QUICK ? "1" : "3"));
const SHAPES = arg("shapes", QUICK ? `1x${SEQ},2x${SEQ}` : `1x${SEQ},8x${SEQ},32x${SEQ},1x${4 * SEQ}`)
  .split(",")
  .map(dims);
const PADDED = dims(arg("padded", QUICK ? `4x${SEQ}` : `32x${SEQ}`));
const PROFILE_SHAPE = dims(arg("profile-shape", QUICK ? `2x${SEQ}` : `32x${SEQ}`));
const FP32_PEAK = 67; // TFLOP/s, H200 SXM datasheet

const cfg = benchConfig(QUICK ? QUICK_BERT : undefined);
/** Encoder flops of one batch: the projections and FFN GEMMs plus the two attention matmuls. */
function flops(B: number, S: number): number {
  const H = cfg.hidden;
  const perLayer = 2 * B * S * (4 * H * H + 2 * H * cfg.ffn) + 4 * B * S * S * H;
  return cfg.layers * perLayer;
}
const tflops = (f: number, ms: number) => f / (ms * 1e-3) / 1e12;

const dir = mkdtempSync(join(tmpdir(), "mhafuse-gpu-bert-"));
const path = join(dir, "bert.onnx");
const graph = buildBertGraph(cfg);
saveModelFile(modelFromGraph(graph), path);

const fused = await InferenceSession.create(path, { executionProviders: ["webgpu"] });
const unfused = await InferenceSession.create(path, {
  executionProviders: ["webgpu"],
  graphOptimizationLevel: "disabled",
});
const ortSession = has("no-ort")
  ? undefined
  : await ort.InferenceSession.create(path, { executionProviders: ["webgpu"] });
console.log(
  `node ${process.version}, ${new Date().toISOString()}, reps ${REPS}, warmup ${WARMUP}, ` +
    `model ${cfg.layers}x${cfg.hidden} (${cfg.heads} heads, ffn ${cfg.ffn}), mhafuse robustness ` +
    `${robustnessWanted({}) ? "on (MHAFUSE_WEBGPU_ROBUSTNESS=1)" : "off (default)"}`,
);
console.log(`fused: ${fused.attentionReport.filter((b) => b.fused).length} attention blocks fused`);

type Feeds = Record<string, Tensor>;
const toOrt = (f: Feeds) =>
  Object.fromEntries(
    Object.entries(f).map(([k, t]) => [k, new ort.Tensor("int64", t.data as BigInt64Array, t.dims)]),
  );

const engines: {
  name: string;
  run: (f: Feeds, o: Record<string, ort.Tensor>) => Promise<unknown>;
  session?: InferenceSession;
}[] = [
  { name: "mhafuse-webgpu fused", run: (f) => fused.run(f), session: fused },
  { name: "mhafuse-webgpu unfused", run: (f) => unfused.run(f), session: unfused },
];
if (ortSession) engines.push({ name: "onnxruntime webgpu", run: (_f, o) => ortSession.run(o) });
const fp16 = await fp16Engines(path);
engines.push(...fp16);
// Padding removal is opt-in on webgpu: the token-wise layers and the packed op on the valid tokens only.
const unpadded = await InferenceSession.create(path, { executionProviders: ["webgpu"], removePadding: true });
engines.push({ name: "mhafuse-webgpu unpadded", run: (f) => unpadded.run(f), session: unpadded });
// Replay off: every run node by node (kernel choice, shape checks, uniform packing per dispatch), as before.
const noReplay = [
  await InferenceSession.create(path, { executionProviders: ["webgpu"], replay: false }),
  ...(fp16.length
    ? [
        await InferenceSession.create(path, {
          executionProviders: ["webgpu"],
          precision: "fp16",
          replay: false,
        }),
      ]
    : []),
];
engines.push({ name: "mhafuse-webgpu fused, no replay", run: (f) => noReplay[0]!.run(f) });
if (noReplay[1]) engines.push({ name: "mhafuse-webgpu fp16, no replay", run: (f) => noReplay[1]!.run(f) });
// --head-to-head: only mhafuse fused (fp32 and fp16) and onnxruntime, alternating — no host-bound engine
// (node by node, unfused) runs between them to let the GPU's clocks drop.
if (has("head-to-head")) {
  const keep = new Set(["mhafuse-webgpu fused", "onnxruntime webgpu", "mhafuse-webgpu fp16"]);
  engines.splice(0, engines.length, ...engines.filter((e) => keep.has(e.name)));
}
const ORT_ROW = engines.findIndex((e) => e.name === "onnxruntime webgpu");
const FP16_ROW = engines.findIndex((e) => e.name === "mhafuse-webgpu fp16");

/** Padded lengths: uniform in [S/8, S] from a fixed seed (16..128 at S = 128). */
function paddedLengths(B: number, S: number): number[] {
  const rand = seededRandom(20261128);
  const lo = Math.max(1, Math.floor(S / 8));
  return Array.from({ length: B }, () => lo + Math.floor(rand() * (S - lo + 1)));
}

/** One shape's rows; `full`: every length is S (the PyTorch rows of --torch are measured so). */
async function modelRow(
  label: string,
  B: number,
  S: number,
  lengths: number[],
  full: boolean,
): Promise<void> {
  const feeds = bertInputs(lengths, S, cfg.vocab) as unknown as Feeds;
  const ortFeeds = toOrt(feeds);
  for (const e of engines) for (let i = 0; i < WARMUP; i++) await e.run(feeds, ortFeeds);
  const times = engines.map(() => [] as number[]);
  for (let r = 0; r < REPS; r++)
    for (const [k, e] of engines.entries()) {
      const t0 = performance.now();
      await e.run(feeds, ortFeeds);
      times[k]!.push(performance.now() - t0);
    }
  const ortMs = ORT_ROW >= 0 ? median(times[ORT_ROW]!) : Number.NaN;
  for (const [k, e] of engines.entries()) {
    const ms = median(times[k]!);
    const tf = tflops(flops(B, S), ms);
    console.log(
      `${label.padEnd(16)} ${e.name.padEnd(32)} ${ms.toFixed(2).padStart(8)} ms  ${tf.toFixed(2).padStart(6)} TFLOP/s ` +
        `(${((100 * tf) / FP32_PEAK).toFixed(1)}% of fp32 peak)  ${(ms / ortMs).toFixed(2)}x onnxruntime`,
    );
  }
  const replay = engines.flatMap((e) => {
    const r = e.session?.lastReplay;
    return r ? [`${e.name}: ${r.last}${r.reason ? ` (${r.reason})` : ""}`] : [];
  });
  console.log(`${label.padEnd(16)} replay: ${replay.join("; ")}`);
  for (const line of await fp16CheckLines(B, S, fused, fp16, feeds))
    console.log(full ? line : `${line} (padded)`);
  if (full)
    for (const line of torchLines(B, S, FP16_ROW >= 0 ? median(times[FP16_ROW]!) : undefined, flops(B, S)))
      console.log(line);
}

for (const [B, S] of SHAPES) await modelRow(`[${B},${S}]`, B, S, Array(B).fill(S), true);
{
  const [B, S] = PADDED;
  const lengths = paddedLengths(B, S);
  const mean = lengths.reduce((a, b) => a + b, 0) / B;
  console.log(
    `padded [${B},${S}]: lengths ${Math.min(...lengths)}..${Math.max(...lengths)}, mean ${mean.toFixed(1)}`,
  );
  await modelRow(`[${B},${S}] padded`, B, S, lengths, false);
}

// The fused attention kernel alone (packed QKV, TensorRT layout, all lengths full): GPU time and wall time.
if (!has("no-kernels")) {
  const ctx = await WebGpuContext.create({ toggles: [RAW_TIMESTAMPS] });
  const H = cfg.hidden / cfg.heads;
  const kernelShapes: [number, number][] = QUICK
    ? [
        [2, 4 * SEQ],
        [4, SEQ],
      ]
    : [
        [8, 512],
        [32, 128],
      ];
  const rand = seededRandom(5);
  for (const [B, S] of kernelShapes) {
    const N = cfg.heads;
    const qkv = Float32Array.from({ length: S * B * 3 * N * H }, () => rand() * 2 - 1);
    const input = { buffer: ctx.pool.upload(qkv), dims: [S, B, 3 * N * H] };
    const out = { buffer: ctx.pool.acquire(S * B * N * H * 4), dims: [S, B, N * H] };
    const f = attentionFlops({ batch: B, numHeads: N, seqQ: S, seqKV: S, headSize: H, vHeadSize: H });
    // Default (subgroup softmax where the adapter has subgroups), then the portable workgroup-memory one.
    for (const subgroups of [undefined, false]) {
      const { gpuMs, wallMs } = await timeKernel(ctx, REPS, (rec) =>
        packedQkvAttention(ctx, rec, { qkv: input, numHeads: N, out, subgroups }),
      );
      const label = `attention kernel B=${B} N=${N} S=${S} H=${H}${subgroups === false ? " (no subgroups)" : ""}`;
      console.log(
        label.padEnd(56) +
          ` gpu ${gpuMs.toFixed(3).padStart(8)} ms ${tflops(f, gpuMs).toFixed(2).padStart(6)} TFLOP/s ` +
          `(${((100 * tflops(f, gpuMs)) / FP32_PEAK).toFixed(1)}% of fp32 peak) | wall ${wallMs.toFixed(3).padStart(8)} ms ` +
          `${tflops(f, wallMs).toFixed(2).padStart(6)} TFLOP/s`,
      );
    }
    ctx.pool.release(input.buffer);
    ctx.pool.release(out.buffer);
  }
  ctx.dispose();
}

// One whole fused-model run, every dispatch bracketed by timestamp queries: fp32, then fp16.
if (has("profile")) {
  const { graph: g } = optimizeGraph(graph, { level: "all" });
  const [B, S] = PROFILE_SHAPE;
  const feeds = bertInputs(Array(B).fill(S), S, cfg.vocab) as unknown as Feeds;
  const names = g.outputs.map((o) => o.name);
  for (const precision of has("no-fp16") ? (["fp32"] as const) : (["fp32", "fp16"] as const)) {
    const backend = new WebGpuBackend({ toggles: [RAW_TIMESTAMPS], precision });
    const prepared = (await backend.prepare(g, planGraph(g))) as WebGpuPreparedGraph;
    for (let i = 0; i < WARMUP; i++) await prepared.run(feeds, names);
    const t0 = performance.now();
    await prepared.run(feeds, names, { profile: true });
    const wall = performance.now() - t0;
    console.log(
      `profile of one fused ${precision} run at [${B},${S}] (wall ${wall.toFixed(2)} ms, profiled):`,
    );
    if (prepared.lastProfile.length === 0) console.log("  no timestamp-query on this adapter");
    for (const line of profileTable(prepared.lastProfile)) console.log(line);
    for (const f of prepared.fallbacks.values())
      console.log(`  ${precision}: ${f.op} '${f.node}' fell back to the CPU (${f.reason})`);
    await backend.dispose();
  }
}

for (const [name, s] of [
  ["fused", fused],
  ["unfused", unfused],
] as const)
  for (const f of s.fallbacks())
    console.log(`${name}: ${f.op} '${f.node}' fell back to the CPU (${f.reason})`);
for (const { name, f } of fp16Fallbacks(fp16))
  console.log(`${name}: ${f.op} '${f.node}' fell back to the CPU (${f.reason})`);
await releaseFp16(fp16);
await fused.release();
await unfused.release();
await unpadded.release();
for (const s of noReplay) await s.release();
await ortSession?.release();
rmSync(dir, { recursive: true, force: true });
