/**
 * fp32 attention (the subgroup kernel) variant sweep at BERT shapes, packed QKV [S, B, 3E] with every length full:
 * each variant's GPU time (timestamp queries, bench/gpu-timing.ts), in `--rounds` interleaved rounds (the first
 * timing after a compile is sometimes far off), and the pipeline it ran (so a variant that fell back to another
 * kernel shows). Optionally a batch staircase of one kernel (--staircase-o, default the default) at S = 512 (where the waves of workgroups step).
 *
 *   node --import tsx bench/attention-fp32-sweep.ts [--reps 20] [--rounds 2] [--shapes 8x512,32x128]
 *     [--variants '[{"name": "...", "o": {"keyTile": 64, ...}}, ...]'] [--staircase 1,2,...]
 *     [--heads 12 --head-size 64]
 */
import { parseArgs } from "node:util";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import {
  attentionFlops,
  type FastTuning,
  type FlashAttentionArgs,
  packedQkvAttention,
} from "../src/backends/webgpu/kernels/attention.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { randomFloat32, seededRandom } from "../src/models/random.js";
import { benchArgs } from "./cli-args.js";
import { RAW_TIMESTAMPS, timeKernel } from "./gpu-timing.js";

type Opts = FastTuning & Pick<FlashAttentionArgs, "ablate">;
const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      reps: { type: "string", default: "20" },
      rounds: { type: "string", default: "2" },
      shapes: { type: "string", default: "8x512,32x128" },
      /** Heads and head size (BERT's 12 × 64 by default; e.g. 32 × 128 for a Llama-sized head). */
      heads: { type: "string", default: "12" },
      "head-size": { type: "string", default: "64" },
      variants: { type: "string", default: '[{"name": "default", "o": {}}]' },
      staircase: { type: "string" },
      /** Options (JSON) of the kernel the staircase runs (default: the default kernel). */
      "staircase-o": { type: "string", default: "{}" },
    },
  }),
);
const REPS = Number(values.reps);
const variants = JSON.parse(values.variants!) as { name: string; o: Opts }[];
const ctx = await WebGpuContext.create({ toggles: [RAW_TIMESTAMPS] });
const info = ctx.gpu.adapterInfo;
console.log(
  `adapter: ${info.vendor} ${info.architecture} ${info.description} | workgroup storage ${ctx.gpu.limits.maxComputeWorkgroupStorageSize} B | robustness ${ctx.gpu.robustness ? "on" : "off"} | ${new Date().toISOString()} reps ${REPS}`,
);
/** Uniform values in [-1, 1) from `seed` (the models' generator). */
const filled = (n: number, seed: number): Float32Array => randomFloat32(n, 1, seededRandom(seed));
const N = Number(values.heads);
const H = Number(values["head-size"]);
function problem(B: number, S: number) {
  const t = (dims: number[], seed: number): GpuTensor => ({
    buffer: ctx.pool.upload(
      filled(
        dims.reduce((a, b) => a * b, 1),
        seed,
      ),
    ),
    dims,
  });
  return {
    qkv: t([S, B, 3 * N * H], 30),
    out: t([S, B, N * H], 31),
    lengths: ctx.pool.upload(new Int32Array(B).fill(S)),
    flops: attentionFlops({ batch: B, numHeads: N, seqQ: S, seqKV: S, headSize: H, vHeadSize: H }),
  };
}
async function time(label: string, p: ReturnType<typeof problem>, o: Opts) {
  const before = new Set(ctx.pipelines.keys());
  const { gpuMs } = await timeKernel(ctx, REPS, (rec) =>
    packedQkvAttention(ctx, rec, { qkv: p.qkv, numHeads: N, lengths: p.lengths, out: p.out, ...o }),
  );
  const fresh = ctx.pipelines.keys().filter((k) => !before.has(k));
  const tf = p.flops / (gpuMs * 1e-3) / 1e12;
  console.log(
    `${label.padEnd(60)} gpu ${gpuMs.toFixed(3)} ms ${tf.toFixed(2).padStart(6)} TFLOP/s ${fresh.map((k) => k.replace(/^.*:Br/, "Br")).join(" ")}`,
  );
}
if (values.staircase)
  for (const B of values.staircase.split(",").map(Number)) {
    const p = problem(B, 512);
    const o = JSON.parse(values["staircase-o"]!) as Opts;
    for (let r = 0; r < Number(values.rounds); r++)
      await time(`staircase B=${B} S=512 (${Math.ceil(512 / (o.rowTile ?? 64)) * N * B} workgroups)`, p, o);
  }
for (const spec of values.shapes!.split(",")) {
  const [B, S] = spec.split("x").map(Number) as [number, number];
  const p = problem(B, S);
  for (let round = 1; round <= Number(values.rounds); round++)
    for (const v of variants) {
      try {
        await time(`[${B},${N},${S},${H}] ${v.name} (${round})`, p, v.o);
      } catch (e) {
        console.log(`[${B},${N},${S},${H}] ${v.name}: FAILED ${(e as Error).message.slice(0, 1500)}`);
      }
    }
}
process.exit(0);
