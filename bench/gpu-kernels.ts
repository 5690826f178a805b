/**
 * WebGPU kernel throughput: SGEMM at BERT-base shapes and 4096³, the fused flash-attention kernel at
 * [B=8, N=12, S=512, H=64] and [B=32, N=12, S=128, H=64] (packed QKV, TensorRT layout), LayerNorm.
 * GPU time per kernel from timestamp queries (median over the repeats, each dispatch its own pass) beside
 * wall time (one submit of all repeats, until the queue is idle, divided by the repeats).
 *
 *   npm run bench:gpu:kernels [-- --reps 20] [-- --smoke]    (--smoke: tiny shapes, for lavapipe)
 *   --toggles  create the instance with Dawn's unsafe toggles (shader-f16 / subgroup matrix on NVIDIA)
 */
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { DAWN_UNSAFE_TOGGLES } from "../src/backends/webgpu/device.js";
import { attentionFlops, packedQkvAttention } from "../src/backends/webgpu/kernels/attention.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { gemm, gemmFlops } from "../src/backends/webgpu/kernels/gemm.js";
import { layerNorm } from "../src/backends/webgpu/kernels/norm.js";
import type { CommandRecorder } from "../src/backends/webgpu/recorder.js";

const arg = (name: string) => process.argv.indexOf(name);
const REPS = arg("--reps") > 0 ? Number(process.argv[arg("--reps") + 1]) : 20;
const SMOKE = arg("--smoke") > 0;
/** Plain fp32 FMA peak of an H200 SXM (the vendor's datasheet; same as H100 SXM). */
const FP32_PEAK_TFLOPS = 67;

// Dawn quantizes timestamps (to 2^16 ns here) unless told not to: per-kernel times need the raw counter.
const toggles = ["disable-dawn-features=timestamp_quantization"];
if (arg("--toggles") > 0) toggles.push(...DAWN_UNSAFE_TOGGLES);
const ctx = await WebGpuContext.create({ toggles });
const info = ctx.gpu.adapterInfo;
const f = ctx.gpu.features;
console.log(
  `adapter: ${info.vendor} ${info.architecture} ${info.device} ${info.description} | subgroups ${f.subgroups} (${f.subgroupMinSize}-${f.subgroupMaxSize}) shader-f16 ${f.shaderF16} timestamp-query ${f.timestampQuery} subgroup-matrix ${f.subgroupMatrix} | workgroup storage ${ctx.gpu.limits.maxComputeWorkgroupStorageSize} B`,
);
console.log(`node ${process.version}, ${new Date().toISOString()}, reps ${REPS}`);

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}
const tensor = (dims: number[], seed: number): GpuTensor => ({
  buffer: ctx.pool.upload(
    filled(
      dims.reduce((a, b) => a * b, 1),
      seed,
    ),
  ),
  dims,
});

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

interface Row {
  name: string;
  flops: number;
  gpuMs: number;
  wallMs: number;
}
const rows: Row[] = [];

/** Compiles and warms, then times REPS dispatches: profiled (GPU time) and unprofiled (wall time). */
async function measure(name: string, flops: number, record: (rec: CommandRecorder) => void): Promise<void> {
  const warm = ctx.recorder();
  record(warm);
  record(warm);
  await warm.submit();
  await warm.done();
  let gpuMs = Number.NaN;
  if (ctx.gpu.features.timestampQuery) {
    const rec = ctx.recorder({ profile: true });
    for (let r = 0; r < REPS; r++) record(rec);
    await rec.submit();
    gpuMs = median(rec.timings.map((t) => t.ns)) / 1e6;
  }
  const rec = ctx.recorder();
  for (let r = 0; r < REPS; r++) record(rec);
  const t0 = performance.now();
  await rec.submit();
  await rec.done();
  const wallMs = (performance.now() - t0) / REPS;
  rows.push({ name, flops, gpuMs, wallMs });
  const tf = (ms: number) => flops / (ms * 1e-3) / 1e12;
  console.log(
    `${name.padEnd(46)} gpu ${gpuMs.toFixed(3).padStart(8)} ms ${tf(gpuMs).toFixed(2).padStart(6)} TFLOP/s (${((100 * tf(gpuMs)) / FP32_PEAK_TFLOPS).toFixed(1).padStart(4)}% of fp32 peak) | wall ${wallMs.toFixed(3).padStart(8)} ms ${tf(wallMs).toFixed(2).padStart(6)} TFLOP/s`,
  );
}

// GEMM: BERT-base linear layers at 128 tokens ([1,128]) and 4096 tokens ([32,128]), then 4096³.
const E = SMOKE ? 64 : 768;
const FF = 4 * E;
const tokenCounts = SMOKE ? [32] : [128, 4096];
for (const M of tokenCounts) {
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
{
  const n = SMOKE ? 256 : 4096;
  const a = tensor([n, n], 20);
  const b = tensor([n, n], 21);
  const c = tensor([n, n], 22);
  await measure(`gemm ${n}³`, gemmFlops(n, n, n), (rec) => gemm(ctx, rec, { a, b, out: c }));
}

// Fused attention, packed QKV [S, B, 3E] with per-sequence lengths (all full: no skipped work).
for (const [B, S] of SMOKE
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
  await measure(`  … with 32-row tiles (more workgroups per SM)`, flops, (rec) =>
    packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out, rowTile: 32 }),
  );
  // Where the time goes: the same kernel without one stage (wrong results, timing only).
  for (const ablate of ["softmax", "pv"] as const)
    await measure(`  … without the ${ablate} stage`, flops, (rec) =>
      packedQkvAttention(ctx, rec, { qkv, numHeads: N, lengths, out, ablate }),
    );
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
