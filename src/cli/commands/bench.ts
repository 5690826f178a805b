import type { Command } from "commander";
import { InferenceSession } from "../../engine/session.js";
import { MhafuseError } from "../../errors.js";
import type { Tensor } from "../../ir/tensor.js";
import { type FeedOptions, parseShapes, randomFeeds } from "../../models/random-feeds.js";
import { loadModel } from "../../onnx/index.js";
import { type Progress, progressFor } from "../progress.js";

/** Latency summary of one engine, in milliseconds. */
export interface LatencyStats {
  engine: string;
  iterations: number;
  mean: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Inferences (batch rows) per second at the mean latency. */
  throughput: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function summarize(engine: string, times: number[], batch: number): LatencyStats {
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return {
    engine,
    iterations: times.length,
    mean,
    min: sorted[0]!,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1]!,
    throughput: (batch * 1000) / mean,
  };
}

type Runner = { name: string; run: () => Promise<unknown> };

/** onnxruntime-node's CPU provider on the same model bytes and feeds (a devDependency: optional here). */
async function onnxruntimeRunner(
  modelPath: string,
  feeds: Record<string, Tensor>,
  threads?: number,
): Promise<Runner> {
  let ort: typeof import("onnxruntime-node");
  try {
    ort = await import("onnxruntime-node");
  } catch {
    throw new MhafuseError(
      "--compare onnxruntime needs the onnxruntime-node package (npm install onnxruntime-node)",
    );
  }
  const session = await ort.InferenceSession.create(modelPath, threads ? { intraOpNumThreads: threads } : {});
  const ortFeeds = Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [
      k,
      new ort.Tensor(t.type as "float32", t.data as Float32Array, [...t.dims]),
    ]),
  );
  return { name: "onnxruntime-node (cpu)", run: () => session.run(ortFeeds) };
}

/** Warm-up, then the timed iterations with the engines interleaved so that noise hits them alike. */
async function measure(
  runners: Runner[],
  warmup: number,
  iterations: number,
  progress: Progress,
): Promise<number[][]> {
  for (const r of runners) for (let i = 0; i < warmup; i++) await r.run();
  const times = runners.map(() => [] as number[]);
  for (let i = 0; i < iterations; i++) {
    for (const [k, r] of runners.entries()) {
      const t0 = performance.now();
      await r.run();
      times[k]!.push(performance.now() - t0);
    }
    progress.tick();
  }
  progress.stop();
  return times;
}

function positiveInt(flag: string, allowZero = false) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < (allowZero ? 0 : 1))
      throw new MhafuseError(
        `${flag} must be a ${allowZero ? "non-negative" : "positive"} integer, got '${v}'`,
      );
    return n;
  };
}

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("benchmark a model on generated inputs, like trtexec / onnxruntime_perf_test")
    .argument("<model>", "ONNX model file")
    .option(
      "--shapes <spec>",
      "input shapes, e.g. input_ids:8x128,attention_mask:8x128 (default: batch 1, seq 128)",
    )
    .option("--pad-random", "right-pad each sequence's attention mask to a random length")
    .option("--iterations <n>", "timed runs per engine", positiveInt("--iterations"), 20)
    .option("--warmup <n>", "untimed runs per engine first", positiveInt("--warmup", true), 3)
    .option("--provider <name>", "execution provider: cpu or webgpu", "cpu")
    .option("--precision <p>", "fp32 or fp16 (webgpu: f16 storage, f32 accumulation; cpu runs fp32)", "fp32")
    .option("--threads <n>", "intra-op threads (mhafuse and onnxruntime alike)", positiveInt("--threads"))
    .option("--no-fuse", "run the graph without attention fusion")
    .option(
      "--no-replay",
      "run every iteration node by node (webgpu: no replay of the recorded GPU commands; cpu: no bound plan)",
    )
    .option(
      "--compare <engine>",
      "also run onnxruntime-node on the same inputs, interleaved (value: onnxruntime)",
    )
    .option("--seed <n>", "seed of the generated inputs", positiveInt("--seed"), 1)
    .option("--json", "print the results as JSON (no progress bar)")
    .action(async (modelPath: string, opts) => {
      if (opts.compare && opts.compare !== "onnxruntime")
        throw new MhafuseError(`--compare: only 'onnxruntime' is supported, got '${opts.compare}'`);
      const model = await loadModel(modelPath);
      const feedOptions: FeedOptions = {
        shapes: opts.shapes ? parseShapes(opts.shapes) : undefined,
        randomPadding: Boolean(opts.padRandom),
        seed: opts.seed,
      };
      const feeds = randomFeeds(model.graph, feedOptions);
      const batch = Object.values(feeds)[0]?.dims[0] ?? 1;
      const session = await InferenceSession.create(modelPath, {
        executionProviders: [opts.provider],
        graphOptimizationLevel: opts.fuse ? "all" : "disabled",
        precision: opts.precision,
        replay: opts.replay ? undefined : false,
      });
      const label = `${opts.provider}${opts.precision === "fp32" ? "" : ` ${opts.precision}`}${opts.fuse ? "" : ", unfused"}${opts.replay ? "" : ", no replay"}`;
      const runners: Runner[] = [{ name: `mhafuse (${label})`, run: () => session.run(feeds) }];
      if (opts.compare) runners.push(await onnxruntimeRunner(modelPath, feeds, opts.threads));
      const progress = progressFor(opts.json ? undefined : process.stderr, opts.iterations, "bench");
      const times = await measure(runners, opts.warmup, opts.iterations, progress);
      const stats = runners.map((r, k) => summarize(r.name, times[k]!, batch));
      const shapes = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims]));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ model: modelPath, shapes, results: stats }, null, 2)}\n`);
        return;
      }
      const out = (s: string) => process.stdout.write(`${s}\n`);
      out(`model ${modelPath}`);
      out(
        `inputs ${Object.entries(shapes)
          .map(([k, d]) => `${k}:${d.join("x")}`)
          .join(", ")}`,
      );
      out(
        `${"engine".padEnd(32)} ${["mean", "p50", "p90", "p99", "min"].map((h) => `${h} ms`.padStart(10)).join("")}  inferences/s`,
      );
      for (const s of stats)
        out(
          `${s.engine.padEnd(32)} ${[s.mean, s.p50, s.p90, s.p99, s.min].map((v) => v.toFixed(2).padStart(10)).join("")}  ${s.throughput.toFixed(1)}`,
        );
      if (stats.length === 2)
        out(`mhafuse / onnxruntime (p50): ${(stats[0]!.p50 / stats[1]!.p50).toFixed(2)}x`);
    });
}
