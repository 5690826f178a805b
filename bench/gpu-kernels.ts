/**
 * WebGPU kernel throughput: SGEMM at BERT-base shapes and 4096³, the fused flash-attention kernel at
 * [B=8, N=12, S=512, H=64] and [B=32, N=12, S=128, H=64] (packed QKV, TensorRT layout), LayerNorm.
 * GPU time per kernel from timestamp queries (median over the repeats, each dispatch its own pass) beside
 * wall time (one submit of all repeats, until the queue is idle, divided by the repeats).
 *
 *   npm run bench:gpu:kernels [-- --reps 20] [-- --smoke]    (--smoke: tiny shapes, for lavapipe)
 *   --toggles  create the instance with Dawn's unsafe toggles (shader-f16 / subgroup matrix on NVIDIA)
 *   --fp16     add the fp16 rows (f16 storage, f32 accumulation): tensor-core kernels where the adapter has
 *              subgroup matrices (needs --toggles on NVIDIA), else the SIMT fp16 kernels; implies --toggles
 *   --fp16-only  only the fp16 rows
 *   --tiles auto,128x128x16/8x8,64x64x16/4x4   fp32 SIMT tile sweep (BMxBNxBK/TMxTN, threads = BM/TM × BN/TN;
 *              a "sg" suffix runs the subgroup variant (A shared by shuffles, GemmTile.subgroup; "sgN":
 *              lane groups of N), e.g. 64x128x16/8x4sg; a "-loads" / "-smem" suffix times the tile without a
 *              stage, GemmTile.ablate;
 *              "auto": what gemm() picks itself, tile and split-K): each
 *              config on 4096³ and the 4096- and 1024-token BERT GEMMs with their epilogues; nothing else runs
 *   --tc-tiles auto,64x64x32/2x2,128x128x16/2x2d   tensor-core tile sweep (BMxBNxBK/WMxWN; a trailing "d": the
 *              direct kernel, fragments straight from storage; "p": two register stages of prefetch; "s": one
 *              workgroup buffer, two barriers a step; "auto" as above): each config on 4096³ and the 4096- and
 *              1024-token BERT GEMMs with their epilogues (implies --fp16)
 *   --norms    only SkipLayerNorm at [4096,768] and [128,768] (BERT [32,128] / [1,128]), f32 and f16 storage,
 *              the row-group kernel with vec4 loads (the default) against scalar loads, twice in turn
 *   --attention  only the fp32 attention rows (every tile variant of the subgroup kernel and the fallback)
 *   --tc-attention  only the fp16 attention rows: the tensor-core kernel's default, every other variant and the
 *                  default without each stage (ablations: where its time goes)
 *              (TcAttentionVariant: 64- or 32-key tiles, P in the K tile's memory or its own; one subgroup),
 *              and the SIMT fp16 kernel (implies --fp16; the fp16 rows run the variants too)
 */
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { DAWN_UNSAFE_TOGGLES } from "../src/backends/webgpu/device.js";
import {
  attentionFlops,
  type FlashAttentionArgs,
  flashAttention,
  packedQkvAttention,
} from "../src/backends/webgpu/kernels/attention.js";
import {
  TC_ATTENTION_VARIANTS,
  type TcAttentionChoice,
  tcAttentionChoiceFor,
  tcAttentionPlan,
} from "../src/backends/webgpu/kernels/attention-tc.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { type GemmArgs, gemm, gemmFlops } from "../src/backends/webgpu/kernels/gemm.js";
import {
  TC_TILE_HUGE,
  TC_TILE_LARGE,
  TC_TILE_LARGE_K64,
  TC_TILE_LARGE_W4,
  TC_TILE_SMALL,
  TC_TILE_SOLO,
  TC_TILE_WIDE,
  TC_TILE_WIDE12,
  type TcTile,
} from "../src/backends/webgpu/kernels/gemm-tc.js";
import { layerNorm, skipLayerNorm } from "../src/backends/webgpu/kernels/norm.js";
import { toF16 } from "../src/backends/webgpu/precision.js";
import type { CommandRecorder } from "../src/backends/webgpu/recorder.js";
import { randomFloat32, seededRandom } from "../src/models/random.js";
import { RAW_TIMESTAMPS, timeKernel } from "./gpu-timing.js";

const arg = (name: string) => process.argv.indexOf(name);
if (arg("--help") > 0) {
  // Before any GPU work: the benchmark itself takes minutes on a software adapter.
  console.log(
    "usage: node --import tsx bench/gpu-kernels.ts [--reps N] [--smoke] [--toggles] [--fp16 | --fp16-only]\n" +
      "  [--tiles BMxBNxBK/TMxTN[sg],...] [--tc-tiles BMxBNxBK/WMxWN,...] [--attention] [--tc-attention]\n" +
      "  (see the file header)",
  );
  process.exit(0);
}
const REPS = arg("--reps") > 0 ? Number(process.argv[arg("--reps") + 1]) : 20;
const SMOKE = arg("--smoke") > 0;
const TC_TILES = arg("--tc-tiles") > 0 ? process.argv[arg("--tc-tiles") + 1]! : undefined;
const TILES = arg("--tiles") > 0 ? process.argv[arg("--tiles") + 1]! : undefined;
const ATTENTION_ONLY = arg("--attention") > 0;
const NORMS_ONLY = arg("--norms") > 0;
const TC_ATTENTION_ONLY = arg("--tc-attention") > 0;
const FP16_ONLY = arg("--fp16-only") > 0 || !!TC_TILES || !!TILES || TC_ATTENTION_ONLY;
const FP16 = FP16_ONLY || arg("--fp16") > 0;

/** "128x64x32/4x2" → a tile config. */
function parseTile(spec: string): TcTile {
  const m = /^(\d+)x(\d+)x(\d+)\/(\d+)x(\d+)([dps]*)$/.exec(spec);
  if (!m) throw new Error(`--tc-tiles: bad tile ${spec} (want BMxBNxBK/WMxWN[d|p|s|sp], e.g. 128x64x32/4x2)`);
  const [BM, BN, BK, WM, WN] = m.slice(1, 6).map(Number) as [number, number, number, number, number];
  const t: TcTile = { BM, BN, BK, WM, WN };
  if (m[6]!.includes("d")) t.direct = true;
  if (m[6]!.includes("p")) t.deep = true;
  if (m[6]!.includes("s")) t.single = true;
  return t;
}
/** A --tc-tiles entry: "auto" or a tile, with "/kN" forcing N split-K slices (e.g. auto/k2). */
function tcSweepOptions(spec: string): Partial<GemmArgs> {
  const [tile, k] = spec.split("/k") as [string, string | undefined];
  const o: Partial<GemmArgs> =
    tile === "auto" ? { precision: "fp16" } : { precision: "fp16", tcTile: parseTile(tile) };
  if (k !== undefined) o.kSlices = Number(k);
  return o;
}
/** Plain fp32 FMA peak of an H200 SXM (the vendor's datasheet; same as H100 SXM). */
const FP32_PEAK_TFLOPS = 67;

const toggles = [RAW_TIMESTAMPS];
if (arg("--toggles") > 0 || FP16 || NORMS_ONLY) toggles.push(...DAWN_UNSAFE_TOGGLES);
const ctx = await WebGpuContext.create({ toggles });
const info = ctx.gpu.adapterInfo;
const f = ctx.gpu.features;
console.log(
  `adapter: ${info.vendor} ${info.architecture} ${info.device} ${info.description} | subgroups ${f.subgroups} (${f.subgroupMinSize}-${f.subgroupMaxSize}) shader-f16 ${f.shaderF16} timestamp-query ${f.timestampQuery} subgroup-matrix ${f.subgroupMatrix} | workgroup storage ${ctx.gpu.limits.maxComputeWorkgroupStorageSize} B`,
);
console.log(
  `f16: ${JSON.stringify(ctx.f16)} | subgroup-matrix configs ${JSON.stringify(f.subgroupMatrixConfigs)}`,
);
console.log(
  `node ${process.version}, ${new Date().toISOString()}, reps ${REPS}, Dawn robustness ${ctx.gpu.robustness ? "on" : "off"}`,
);

/** Uniform values in [-1, 1) from `seed` (the models' generator). */
const filled = (n: number, seed: number): Float32Array => randomFloat32(n, 1, seededRandom(seed));
const tensor = (dims: number[], seed: number): GpuTensor => ({
  buffer: ctx.pool.upload(
    filled(
      dims.reduce((a, b) => a * b, 1),
      seed,
    ),
  ),
  dims,
});

interface Row {
  name: string;
  flops: number;
  gpuMs: number;
  wallMs: number;
}
const rows: Row[] = [];

/** Compiles and warms, then times REPS dispatches: profiled (GPU time) and unprofiled (wall time). */
async function measure(name: string, flops: number, record: (rec: CommandRecorder) => void): Promise<void> {
  try {
    await measureOnce(name, flops, record);
  } catch (e) {
    // One kernel failing to compile (an adapter's WGSL dialect) must not cost the rest of the run.
    console.log(`${name}: FAILED ${(e as Error).message.slice(0, 2000)}`);
  }
}
async function measureOnce(
  name: string,
  flops: number,
  record: (rec: CommandRecorder) => void,
): Promise<void> {
  const { gpuMs, wallMs } = await timeKernel(ctx, REPS, record);
  rows.push({ name, flops, gpuMs, wallMs });
  const tf = (ms: number) => flops / (ms * 1e-3) / 1e12;
  console.log(
    `${name.padEnd(46)} gpu ${gpuMs.toFixed(3).padStart(8)} ms ${tf(gpuMs).toFixed(2).padStart(6)} TFLOP/s (${((100 * tf(gpuMs)) / FP32_PEAK_TFLOPS).toFixed(1).padStart(4)}% of fp32 peak) | wall ${wallMs.toFixed(3).padStart(8)} ms ${tf(wallMs).toFixed(2).padStart(6)} TFLOP/s`,
  );
}

if (NORMS_ONLY) {
  // SkipLayerNorm as BERT's fused graph runs it (x, skip, gamma, beta, bias), bytes-bound: GPU time is the row.
  const W = 768;
  for (const f16 of ctx.gpu.features.shaderF16 ? [false, true] : [false])
    for (const M of [4096, 128]) {
      const make = (dims: number[], seed: number): GpuTensor => {
        const v = filled(
          dims.reduce((a, b) => a * b, 1),
          seed,
        );
        return f16
          ? { buffer: ctx.pool.upload(toF16(v)), dims, f16: true }
          : { buffer: ctx.pool.upload(v), dims };
      };
      const io = {
        x: make([M, W], 40),
        skip: make([M, W], 41),
        gamma: make([W], 42),
        beta: make([W], 43),
        bias: make([W], 44),
        out: make([M, W], 45),
        epsilon: 1e-12,
      };
      for (const round of [1, 2])
        for (const scalarLoads of [false, true])
          await measure(
            `skiplayernorm [${M}x${W}] ${f16 ? "f16" : "f32"} ${scalarLoads ? "scalar" : "vec4"} (${round})`,
            0,
            (rec) => skipLayerNorm(ctx, rec, { ...io, scalarLoads }),
          );
    }
  process.exit(0);
}

// GEMM: BERT-base linear layers at 128 tokens ([1,128]) and 4096 tokens ([32,128]), then 4096³.
const E = SMOKE ? 64 : 768;
const FF = 4 * E;
const tokenCounts = SMOKE ? [32] : [128, 4096];

for (const M of FP16_ONLY || ATTENTION_ONLY ? [] : tokenCounts) {
  const x = tensor([M, E], 1);
  const h = tensor([M, FF], 2);
  const wqkv = tensor([E, 3 * E], 3);
  const wo = tensor([E, E], 4);
  const w1 = tensor([E, FF], 5);
  const w2 = tensor([FF, E], 6);
  const bias3 = tensor([3 * E], 7);
  const biasE = tensor([E], 8);
  const biasF = tensor([FF], 9);
  const oQkv = tensor([M, 3 * E], 10);
  const oE = tensor([M, E], 11);
  const oF = tensor([M, FF], 12);
  await measure(`gemm QKV      [${M}x${E}]·[${E}x${3 * E}] +bias`, gemmFlops(M, 3 * E, E), (rec) =>
    gemm(ctx, rec, { a: x, b: wqkv, bias: bias3, out: oQkv }),
  );
  await measure(`gemm out-proj [${M}x${E}]·[${E}x${E}] +bias+res`, gemmFlops(M, E, E), (rec) =>
    gemm(ctx, rec, { a: x, b: wo, bias: biasE, residual: x, out: oE }),
  );
  await measure(`gemm FFN1     [${M}x${E}]·[${E}x${FF}] +bias+gelu`, gemmFlops(M, FF, E), (rec) =>
    gemm(ctx, rec, { a: x, b: w1, bias: biasF, gelu: true, out: oF }),
  );
  await measure(`gemm FFN2     [${M}x${FF}]·[${FF}x${E}] +bias+res`, gemmFlops(M, E, FF), (rec) =>
    gemm(ctx, rec, { a: h, b: w2, bias: biasE, residual: x, out: oE }),
  );
  await measure(`layernorm     [${M}x${E}] (bytes-bound; TFLOP/s n/a)`, 0, (rec) =>
    layerNorm(ctx, rec, { x, gamma: biasE, beta: biasE, out: oE, epsilon: 1e-12 }),
  );
}
if (!FP16_ONLY && !ATTENTION_ONLY) {
  const n = SMOKE ? 256 : 4096;
  const a = tensor([n, n], 20);
  const b = tensor([n, n], 21);
  const c = tensor([n, n], 22);
  await measure(`gemm ${n}³`, gemmFlops(n, n, n), (rec) => gemm(ctx, rec, { a, b, out: c }));
}

// Fused attention, packed QKV [S, B, 3E] with per-sequence lengths (all full: no skipped work).
for (const [B, S] of FP16_ONLY
  ? []
  : SMOKE
    ? [[2, 64]]
    : [
        [8, 512],
        [32, 128],
      ]) {
  const N = SMOKE ? 2 : 12;
  const H = 64;
  const qkv = tensor([S!, B!, 3 * N * H], 30);
  const out = tensor([S!, B!, N * H], 31);
  const lengths = ctx.pool.upload(new Int32Array(B!).fill(S!));
  const flops = attentionFlops({ batch: B!, numHeads: N, seqQ: S!, seqKV: S!, headSize: H, vHeadSize: H });
  await measure(`attention packed QKV B=${B} N=${N} S=${S} H=${H}`, flops, (rec) =>
    packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out }),
  );
  // The subgroup kernel's other tiles (the default is one of them: see attention.ts's fastConfig).
  const variants: [
    string,
    Pick<
      FlashAttentionArgs,
      "rowTile" | "rowsPerThread" | "shuffleP" | "keyTile" | "pack" | "pInK" | "interleaveKV"
    >,
  ][] = [];
  // The default layout's neighbours (64-key tiles in 48 KiB: attention.ts FAST_LAYOUTS).
  variants.push(
    ["64-key tiles, 64 rows / 4, P by shuffle", { keyTile: 64, pack: true, shuffleP: true }],
    [
      "64-key tiles, 64 rows / 4, P in K, K/V together",
      { keyTile: 64, pack: true, pInK: true, interleaveKV: false },
    ],
    [
      "64-key tiles, 64 rows / 2, P by shuffle, K/V in turn",
      { rowsPerThread: 2, keyTile: 64, pack: true, shuffleP: true, interleaveKV: true },
    ],
  );
  // (8 and 6 rows a thread, and 96-row tiles, ran 1.2–3.7× slower than 64 / 4 on the H200:
  // bench/h200-attention-tiles-1129c.log; dropped from the sweep.)
  for (const [Br, RT] of [
    [64, 4],
    [64, 2],
    [32, 4],
    [32, 2],
  ] as const)
    for (const shuffleP of [false, true])
      variants.push([
        `32-key ${Br}-row tiles, ${RT} rows/thread (${(Br / RT) * 8} threads), P ${shuffleP ? "by shuffle" : "tile"}`,
        {
          rowTile: Br,
          rowsPerThread: RT,
          shuffleP,
          keyTile: 32,
          pack: false,
          pInK: false,
          interleaveKV: false,
        },
      ]);
  // Without --attention only one other tile: the 32-key layout of the same 64 / 4 tile (the default before 11-29).
  const twin = ([, o]: (typeof variants)[number]) =>
    o.rowTile === 64 && o.rowsPerThread === 4 && !o.shuffleP && o.keyTile === 32;
  for (const [label, o] of ATTENTION_ONLY ? variants : variants.filter(twin))
    await measure(`  … ${label}`, flops, (rec) =>
      packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out, ...o }),
    );
  await measure(`  … K/V tiles loaded right before use (no register prefetch)`, flops, (rec) =>
    packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out, prefetchKV: false }),
  );
  // The portable fallback where the adapter has no subgroups of >= 8.
  await measure(`  … workgroup-memory softmax (no subgroups)`, flops, (rec) =>
    packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out, subgroups: false }),
  );
  // Where the time goes: the same kernel without one stage (wrong results, timing only).
  for (const ablate of ["softmax", "pv", "loads", "qk"] as const)
    await measure(`  … without the ${ablate} stage`, flops, (rec) =>
      packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out, ablate }),
    );
}

// fp16: f16 storage, f32 accumulation; tensor cores where detected (else the SIMT fp16 kernels).
const tensor16 = (dims: number[], seed: number): GpuTensor => ({
  buffer: ctx.pool.upload(
    toF16(
      filled(
        dims.reduce((a, b) => a * b, 1),
        seed,
      ),
    ),
  ),
  dims,
});
/**
 * The tile sweeps (--tiles, --tc-tiles): each config on 4096³ and the BERT GEMMs of 4096 tokens ([32,128]) and
 * 1024 tokens ([8,128]) with their epilogues — QKV, attention output, FFN up and down — tensors from `make`
 * (f32 or f16 storage), `configs` the GEMM options each label forces.
 */
async function tileSweep(
  label: string,
  configs: [string, Partial<GemmArgs>][],
  make: (dims: number[], seed: number) => GpuTensor,
): Promise<void> {
  const n = SMOKE ? 256 : 4096;
  const [a, b, c] = [make([n, n], 20), make([n, n], 21), make([n, n], 22)];
  const [wqkv, wo, w1, w2] = [make([E, 3 * E], 3), make([E, E], 4), make([E, FF], 5), make([FF, E], 6)];
  const [bias3, biasE, biasF] = [make([3 * E], 7), make([E], 8), make([FF], 9)];
  const layers = (SMOKE ? [64] : [4096, 1024]).map((M) => ({
    M,
    x: make([M, E], 1),
    h: make([M, FF], 2),
    oQkv: make([M, 3 * E], 10),
    oE: make([M, E], 11),
    oF: make([M, FF], 12),
  }));
  for (const [spec, o] of configs) {
    await measure(`${label} ${spec} gemm ${n}³`, gemmFlops(n, n, n), (rec) =>
      gemm(ctx, rec, { a, b, out: c, ...o }),
    );
    for (const { M, x, h, oQkv, oE, oF } of layers) {
      await measure(`${label} ${spec} QKV [${M}x${E}]·[${E}x${3 * E}] +bias`, gemmFlops(M, 3 * E, E), (rec) =>
        gemm(ctx, rec, { a: x, b: wqkv, bias: bias3, out: oQkv, ...o }),
      );
      await measure(`${label} ${spec} out [${M}x${E}]·[${E}x${E}] +bias`, gemmFlops(M, E, E), (rec) =>
        gemm(ctx, rec, { a: x, b: wo, bias: biasE, out: oE, ...o }),
      );
      await measure(`${label} ${spec} FFN1 [${M}x${E}]·[${E}x${FF}] +bias+gelu`, gemmFlops(M, FF, E), (rec) =>
        gemm(ctx, rec, { a: x, b: w1, bias: biasF, gelu: true, out: oF, ...o }),
      );
      await measure(`${label} ${spec} FFN2 [${M}x${FF}]·[${FF}x${E}] +bias+res`, gemmFlops(M, E, FF), (rec) =>
        gemm(ctx, rec, { a: h, b: w2, bias: biasE, residual: x, out: oE, ...o }),
      );
    }
  }
}
if (TILES) {
  const simt = (spec: string): [string, Partial<GemmArgs>] => {
    if (spec === "auto") return [spec, {}]; // what gemm() picks itself (tile, split-K)
    const m = /^(\d+)x(\d+)x(\d+)\/(\d+)x(\d+)(sg(\d+)?)?(-loads|-smem)?$/.exec(spec);
    if (!m)
      throw new Error(
        `--tiles: bad tile ${spec} (want BMxBNxBK/TMxTN[sg[N]][-loads|-smem], e.g. 128x128x16/8x8 or 64x128x16/8x4sg)`,
      );
    const [BM, BN, BK, TM, TN] = m.slice(1, 6).map(Number) as [number, number, number, number, number];
    const tile: NonNullable<GemmArgs["tile"]> = { BM, BN, BK, TM, TN };
    if (m[6]) tile.subgroup = true;
    if (m[7]) tile.sgLanes = Number(m[7]);
    if (m[8]) tile.ablate = m[8].slice(1) as "loads" | "smem";
    return [spec, { tile }];
  };
  await tileSweep("simt", TILES.split(",").map(simt), tensor);
}
if (TC_TILES && ctx.f16?.syntax)
  await tileSweep(
    "tc",
    TC_TILES.split(",").map((spec) => [spec, tcSweepOptions(spec)]),
    tensor16,
  );
/** What flashAttention runs for a tensor-core attention variant here: subgroups, key tile, P, workgroup bytes. */
function tcLabel(H: number, v: TcAttentionChoice): string {
  const p = tcAttentionPlan(H, H, ctx.gpu.limits.maxComputeWorkgroupStorageSize, !!ctx.f16?.multiSubgroup, v);
  if (!p) return "[does not fit]";
  const sg = p.multi ? `4sg${ctx.f16?.sgBuiltin ? "(subgroup_id)" : ""}` : "1sg";
  return `[${sg} kt${p.BC} P ${p.pInK ? "in K" : "own"}${p.lazy ? " lazy" : " eager"} ${p.bytes} B]`;
}
if (FP16 && f.shaderF16 && !TC_TILES && !TILES && !ATTENTION_ONLY) {
  const kind = ctx.f16?.syntax ? "tc" : "simt";
  for (const M of TC_ATTENTION_ONLY ? [] : tokenCounts) {
    const x = tensor16([M, E], 1);
    const h = tensor16([M, FF], 2);
    const wqkv = tensor16([E, 3 * E], 3);
    const wo = tensor16([E, E], 4);
    const w1 = tensor16([E, FF], 5);
    const w2 = tensor16([FF, E], 6);
    const bias3 = tensor16([3 * E], 7);
    const biasE = tensor16([E], 8);
    const biasF = tensor16([FF], 9);
    const oQkv = tensor16([M, 3 * E], 10);
    const oE = tensor16([M, E], 11);
    const oF = tensor16([M, FF], 12);
    const p = "fp16" as const;
    await measure(`fp16 ${kind} gemm QKV [${M}x${E}]·[${E}x${3 * E}] +bias`, gemmFlops(M, 3 * E, E), (rec) =>
      gemm(ctx, rec, { a: x, b: wqkv, bias: bias3, out: oQkv, precision: p }),
    );
    await measure(`fp16 ${kind} gemm out-proj [${M}x${E}]·[${E}x${E}] +bias+res`, gemmFlops(M, E, E), (rec) =>
      gemm(ctx, rec, { a: x, b: wo, bias: biasE, residual: x, out: oE, precision: p }),
    );
    await measure(`fp16 ${kind} gemm FFN1 [${M}x${E}]·[${E}x${FF}] +bias+gelu`, gemmFlops(M, FF, E), (rec) =>
      gemm(ctx, rec, { a: x, b: w1, bias: biasF, gelu: true, out: oF, precision: p }),
    );
    await measure(`fp16 ${kind} gemm FFN2 [${M}x${FF}]·[${FF}x${E}] +bias+res`, gemmFlops(M, E, FF), (rec) =>
      gemm(ctx, rec, { a: h, b: w2, bias: biasE, residual: x, out: oE, precision: p }),
    );
  }
  const n = SMOKE ? 256 : 4096;
  const a = tensor16([n, n], 20);
  const b = tensor16([n, n], 21);
  const c = tensor16([n, n], 22);
  const tiles: [string, TcTile | undefined][] = ctx.f16?.syntax
    ? [
        // What gemm() picks itself at 4096³ (128×256 as 16 subgroups where 512 invocations are allowed).
        ["auto", undefined],
        ["128x256, 16 subgroups of 32x64, one buffer", TC_TILE_HUGE],
        ["128x192, 12 subgroups of 64x32, 48-deep K, one buffer", TC_TILE_WIDE12],
        ["128x128, 8 subgroups of 64x32, 64-deep K, one buffer", TC_TILE_LARGE_K64],
        ["128x192, 8 subgroups of 64x48, one buffer", TC_TILE_WIDE],
        ["128x128, 8 subgroups of 64x32", TC_TILE_LARGE],
        ["128x128, 4 subgroups of 64x64", TC_TILE_LARGE_W4],
        ["64x64, 4 subgroups of 32x32", TC_TILE_SMALL],
        ["64x64, 1 subgroup of 64x64", TC_TILE_SOLO],
      ]
    : [["", undefined]];
  for (const [label, tcTile] of TC_ATTENTION_ONLY ? [] : tiles)
    await measure(`fp16 ${kind} gemm ${n}³ ${label}`, gemmFlops(n, n, n), (rec) =>
      gemm(ctx, rec, { a, b, out: c, precision: "fp16", tcTile }),
    );
  if (ctx.f16?.syntax && !TC_ATTENTION_ONLY)
    await measure(`fp16 simt gemm ${n}³ (no tensor cores)`, gemmFlops(n, n, n), (rec) =>
      gemm(ctx, rec, { a, b, out: c, precision: "fp16", f16Kernel: "simt" }),
    );
  for (const [B, S] of SMOKE
    ? [[2, 64]]
    : [
        [8, 512],
        [32, 128],
        // Between the two (where the 32- and 64-key tiles cross over) with --tc-attention.
        ...(TC_ATTENTION_ONLY ? [[16, 256]] : []),
      ]) {
    const N = SMOKE ? 2 : 12;
    const H = 64;
    const qkv = tensor16([S!, B!, 3 * N * H], 30);
    const out = tensor16([S!, B!, N * H], 31);
    const lengths = ctx.pool.upload(new Int32Array(B!).fill(S!));
    const flops = attentionFlops({ batch: B!, numHeads: N, seqQ: S!, seqKV: S!, headSize: H, vHeadSize: H });
    // One fp16 packed-attention dispatch on these tensors; the rows differ in the kernel, variant or ablated stage.
    const fp16Attention =
      (o: Pick<Parameters<typeof packedQkvAttention>[2], "f16Kernel" | "tcVariant" | "ablate">) =>
      (rec: CommandRecorder) =>
        packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out, precision: "fp16", ...o });
    await measure(
      `fp16 ${kind} attention packed QKV B=${B} N=${N} S=${S} H=${H}${ctx.f16?.syntax ? ` ${tcLabel(H, tcAttentionChoiceFor(S!, {}, { H, limit: ctx.gpu.limits.maxComputeWorkgroupStorageSize }))}` : ""}`,
      flops,
      fp16Attention({ f16Kernel: ctx.f16?.syntax ? "tensor-core" : "simt" }),
    );
    // The tensor-core kernel's other variants (attention-tc.ts TcAttentionVariant; the default is the row above).
    for (const v of ctx.f16?.syntax ? TC_ATTENTION_VARIANTS : [])
      await measure(
        `  … tc attention ${tcLabel(H, v)}`,
        flops,
        fp16Attention({ f16Kernel: "tensor-core", tcVariant: v }),
      );
    // Where the tensor-core kernel's time goes: the default without one stage (wrong results, timing only).
    for (const ablate of ctx.f16?.syntax ? (["softmax", "pv", "loads", "qk"] as const) : [])
      await measure(
        `  … tc attention without the ${ablate} stage`,
        flops,
        fp16Attention({ f16Kernel: "tensor-core", ablate }),
      );
    if (ctx.f16?.syntax)
      await measure(
        `fp16 simt attention B=${B} S=${S} (no tensor cores)`,
        flops,
        fp16Attention({ f16Kernel: "simt" }),
      );
  }
  // The general op (mhafuse.Attention and the other general ops in fp16 sessions): a causal GQA prefill (Q as
  // [B, S, N·H], K/V as [B, Nkv, S, H]) and a causal BERT-sized problem with a [B, 1, S, S] additive bias; TFLOP/s
  // of the half of the products the causal mask leaves.
  // [B, S, N, Nkv, bias, H]: H = 128 is a Llama-sized head (the lazy kernel's output in two column chunks).
  for (const [B, S, N, Nkv, withBias, H] of SMOKE
    ? [[1, 64, 4, 2, 1, 64]]
    : [
        [1, 2048, 32, 8, 0, 64],
        [1, 2048, 32, 8, 0, 128],
        [8, 512, 12, 12, 1, 64],
      ]) {
    const bsnh = { offset: 0, batchStride: S! * N! * H, headStride: H, seqStride: N! * H };
    const bnsh = { offset: 0, batchStride: Nkv! * S! * H, headStride: S! * H, seqStride: H };
    const q = tensor16([B!, S!, N! * H], 32);
    const k = tensor16([B!, Nkv!, S!, H], 33);
    const v = tensor16([B!, Nkv!, S!, H], 34);
    const out = tensor16([B!, S!, N! * H], 35);
    const bias = withBias ? tensor([B!, 1, S!, S!], 36) : undefined;
    const flops =
      attentionFlops({ batch: B!, numHeads: N!, seqQ: S!, seqKV: S!, headSize: H, vHeadSize: H }) / 2;
    for (const kernel of ctx.f16?.syntax ? (["tensor-core", "simt"] as const) : (["simt"] as const))
      await measure(
        `fp16 ${kernel === "simt" ? "simt" : "tc"} attention causal${bias ? "+bias" : ""} B=${B} S=${S} N=${N}/${Nkv} H=${H}`,
        flops,
        (rec) =>
          flashAttention(ctx, rec, {
            batch: B!,
            numHeads: N!,
            kvNumHeads: Nkv!,
            seqQ: S!,
            seqKV: S!,
            headSize: H,
            vHeadSize: H,
            scale: 0.125,
            q: q.buffer,
            qLayout: bsnh,
            k: k.buffer,
            kLayout: bnsh,
            v: v.buffer,
            vLayout: bnsh,
            out: out.buffer,
            outLayout: bsnh,
            causalOffset: 0,
            bias: bias
              ? {
                  buffer: bias.buffer,
                  offset: 0,
                  batchStride: S! * S!,
                  headStride: 0,
                  rowStride: S!,
                  keyStride: 1,
                }
              : undefined,
            precision: "fp16",
            f16Kernel: kernel,
          }),
      );
  }
}

console.log("\n| kernel | GPU ms | TFLOP/s (GPU) | % fp32 peak | wall ms | TFLOP/s (wall) |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  const tf = (ms: number) => (r.flops ? (r.flops / (ms * 1e-3) / 1e12).toFixed(2) : "–");
  const pct = r.flops ? ((100 * (r.flops / (r.gpuMs * 1e-3) / 1e12)) / FP32_PEAK_TFLOPS).toFixed(1) : "–";
  console.log(
    `| ${r.name.trim()} | ${r.gpuMs.toFixed(3)} | ${tf(r.gpuMs)} | ${pct} | ${r.wallMs.toFixed(3)} | ${tf(r.wallMs)} |`,
  );
}
ctx.dispose();
