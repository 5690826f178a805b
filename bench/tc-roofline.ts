/**
 * Tensor-core ceilings through WebGPU subgroup matrices (issue 11): how fast the pieces of the tensor-core GEMM
 * run on their own, so the GEMM's gap to the hardware can be put on one of them.
 *
 * Each micro-kernel runs `iters` steps in every subgroup of 8 × 132 workgroups; one step is what the GEMM's
 * inner loop does per K tile of 32 (two 16-deep fragment steps of FM×FN multiply-accumulates):
 *   reg       fragments loaded once, the loop only multiplies (the multiply-accumulate ceiling)
 *   wg        + the FM + FN fragments loaded from workgroup memory every fragment step (the GEMM's padded strides)
 *   wg-nopad  the same with unpadded strides (bank conflicts)
 *   wg-stash  + the staging: every thread stores its share of the next A/B tile as scalar f16 (the GEMM's
 *             stash) and the workgroup meets at a barrier, as the GEMM does once per K tile
 *   wg-stores the stash's stores without the barrier; wg-barrier the barrier without the stores
 *   global    fragments loaded straight from a storage buffer every step (cache-resident region)
 * and then the real GEMM at 4096³ (kernels/gemm-tc.ts, its automatic tile) for comparison.
 *
 * node --import tsx bench/tc-roofline.ts [--iters N] [--reps N] [--toggle NAME ...]
 *   --toggle NAME  also enables that Dawn toggle, e.g. disable_robustness (what Dawn's bounds checks cost) or
 *                  disable_workgroup_init (what zeroing workgroup memory costs)
 */
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { bindings } from "../src/backends/webgpu/kernels/common.js";
import { recordTcGemm } from "../src/backends/webgpu/kernels/gemm-tc.js";
import {
  matrixLoad,
  matrixStore,
  matrixTypes,
  SUBGROUP_BUILTINS,
  TC_HEADER,
} from "../src/backends/webgpu/precision.js";
import { packUniforms, uniformStruct } from "../src/backends/webgpu/uniforms.js";
import { RAW_TIMESTAMPS, timeKernel } from "./gpu-timing.js";

const arg = (name: string) => process.argv.indexOf(name);
if (arg("--help") > 0) {
  console.log(
    "usage: node --import tsx bench/tc-roofline.ts [--iters N] [--reps N] [--toggle NAME ...]  (see the file header)",
  );
  process.exit(0);
}
const ITERS = arg("--iters") > 0 ? Number(process.argv[arg("--iters") + 1]) : 1024;
const REPS = arg("--reps") > 0 ? Number(process.argv[arg("--reps") + 1]) : 10;
/** Extra Dawn toggles to enable (`--toggle NAME`, repeatable). */
const extra = process.argv.flatMap((a, i) => (a === "--toggle" ? [process.argv[i + 1]!] : []));

const features = ["allow_unsafe_apis", "vulkan_enable_f16_on_nvidia"];
features.push(...extra);
const ctx = await WebGpuContext.create({
  toggles: [`enable-dawn-features=${features.join(",")}`, RAW_TIMESTAMPS],
});
const info = ctx.gpu.adapterInfo;
console.log(
  `adapter: ${info.vendor} ${info.architecture} ${info.description} | f16 ${JSON.stringify(ctx.f16)}`,
);
console.log(
  `node ${process.version}, ${new Date().toISOString()}, iters ${ITERS}, reps ${REPS}, toggles ${features.join(",")}, Dawn robustness ${ctx.gpu.robustness ? "on" : "off"}`,
);
if (!ctx.f16?.config) {
  console.log("no subgroup-matrix f16 config on this adapter: nothing to measure");
  process.exit(0);
}
const f16 = ctx.f16;
const syntax = f16.syntax!;

type Mode = "reg" | "wg" | "wg-nopad" | "wg-stash" | "wg-stores" | "wg-barrier" | "global";
interface Micro {
  mode: Mode;
  W: number;
  FM: number;
  FN: number;
  result: "f32" | "f16";
}

const GROUPS = 132 * 8;
const F = 16;

function source(m: Micro): string {
  const { W, FM, FN, mode } = m;
  const ty = matrixTypes({ M: F, N: F, K: F }, m.result);
  const pad = mode === "wg-nopad" ? 0 : 8;
  // The GEMM's large-tile geometry: subgroups 2 × (W / 2), each FM×FN fragments; K tile 32.
  const WN = Math.max(1, W / 2);
  const BM = 2 * FM * F;
  const BN = WN * FN * F;
  const AS = 32 + pad;
  const BS = BN + pad;
  const ASZ = BM * AS;
  const BSZ = 32 * BS;
  const lines: string[] = [];
  const loadsFrom = (ks: number, buf: string) => {
    for (let i = 0; i < FM; i++)
      lines.push(
        `      let a${i} = ${matrixLoad(syntax, ty.left, `&${buf === "wg" ? "As" : "G"}`, buf === "wg" ? `cur * ${ASZ}u + (wm * ${FM * F}u + ${i * F}u) * ${AS}u + ${ks * F}u` : `((it * 7u + ${ks * 3 + i}u) & 63u) * 256u`, buf === "wg" ? `${AS}u` : "16u")};`,
      );
    for (let j = 0; j < FN; j++)
      lines.push(
        `      let b${j} = ${matrixLoad(syntax, ty.right, `&${buf === "wg" ? "Bs" : "G"}`, buf === "wg" ? `cur * ${BSZ}u + ${ks * F * BS}u + wn * ${FN * F}u + ${j * F}u` : `((it * 5u + ${ks * 3 + j + 17}u) & 63u) * 256u`, buf === "wg" ? `${BS}u` : "16u")};`,
      );
  };
  for (let ks = 0; ks < 2; ks++) {
    lines.push("    {");
    if (mode.startsWith("wg")) loadsFrom(ks, "wg");
    else if (mode === "global") loadsFrom(ks, "global");
    for (let i = 0; i < FM; i++)
      for (let j = 0; j < FN; j++)
        lines.push(
          `      acc${i}_${j} = subgroupMatrixMultiplyAccumulate(${mode === "reg" ? `ra${i}` : `a${i}`}, ${mode === "reg" ? `rb${j}` : `b${j}`}, acc${i}_${j});`,
        );
    lines.push("    }");
  }
  const T = 32 * W;
  const stash: string[] = [];
  if (mode === "wg-stash" || mode === "wg-stores") {
    // The GEMM's per-thread share of one A and one B tile, as 8-half chunks stored half by half.
    const aChunks = (BM * 32) / 8 / T;
    const bChunks = (32 * BN) / 8 / T;
    for (let e = 0; e < aChunks; e++)
      stash.push(`    { let idx = ${e * T}u + tid; let o = (cur ^ 1u) * ${ASZ}u + (idx / 4u) * ${AS}u + (idx % 4u) * 8u;
      for (var q = 0u; q < 8u; q++) { As[o + q] = f16(f32(it + q) * 1e-3); } }`);
    for (let e = 0; e < bChunks; e++)
      stash.push(`    { let idx = ${e * T}u + tid; let o = (cur ^ 1u) * ${BSZ}u + (idx / ${BN / 8}u) * ${BS}u + (idx % ${BN / 8}u) * 8u;
      for (var q = 0u; q < 8u; q++) { Bs[o + q] = f16(f32(it + q) * 2e-3); } }`);
  }
  if (mode === "wg-stash" || mode === "wg-barrier") stash.push("    workgroupBarrier();");
  const acc: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < FM; i++)
    for (let j = 0; j < FN; j++) {
      acc.push(`  var acc${i}_${j} = ${ty.result}();`);
      store.push(
        `  ${matrixStore(syntax, "&C", `((wid.x * ${W}u + sg) * ${FM * FN}u + ${i * FN + j}u) * 256u`, `acc${i}_${j}`, "16u")};`,
      );
    }
  const pre: string[] = [];
  if (mode === "reg") {
    for (let i = 0; i < FM; i++)
      pre.push(`  let ra${i} = ${matrixLoad(syntax, ty.left, "&G", `${i * 256}u`, "16u")};`);
    for (let j = 0; j < FN; j++)
      pre.push(`  let rb${j} = ${matrixLoad(syntax, ty.right, "&G", `${(j + 8) * 256}u`, "16u")};`);
  }
  const wgDecl = mode.startsWith("wg")
    ? `var<workgroup> As: array<f16, ${2 * ASZ}>;\nvar<workgroup> Bs: array<f16, ${2 * BSZ}>;\n`
    : "";
  return `${TC_HEADER}${SUBGROUP_BUILTINS.enable}${uniformStruct([["iters", "u32"]])}
${bindings([
  { name: "G", type: "f16" },
  { name: "C", type: m.result, write: true },
])}${wgDecl}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32${SUBGROUP_BUILTINS.params}) {
  let sg = sgid; let wm = sg / ${WN}u; let wn = sg % ${WN}u;
  _ = G[0]; // every mode binds G, used or not
${pre.join("\n")}
${acc.join("\n")}
  for (var it = 0u; it < u.iters; it++) {
    let cur = it & 1u;
${lines.join("\n")}
${stash.join("\n")}
  }
${store.join("\n")}
}`;
}

const gBuf = ctx.pool.upload(new Uint16Array(64 * 256 + 16 * 256).fill(0x2c00)); // 0.0625 in f16
const rows: string[] = [];
async function micro(m: Micro): Promise<void> {
  const name = `${m.mode.padEnd(8)} W${m.W} ${m.FM}x${m.FN} ->${m.result}`;
  try {
    const k = ctx.pipelines.get(`tc-roofline:${JSON.stringify(m)}`, () => source(m));
    const out = ctx.pool.acquire(GROUPS * m.W * m.FM * m.FN * 256 * 4);
    const u = packUniforms([["iters", "u32"]], { iters: ITERS });
    const flops = GROUPS * m.W * ITERS * 2 * m.FM * m.FN * 2 * F * F * F;
    const { gpuMs, wallMs } = await timeKernel(ctx, REPS, (rec) =>
      rec.dispatch(k, [gBuf, out], u, [GROUPS], name),
    );
    const line = `${name.padEnd(28)} gpu ${gpuMs.toFixed(3).padStart(8)} ms ${(flops / gpuMs / 1e9).toFixed(1).padStart(7)} TFLOP/s | wall ${wallMs.toFixed(3).padStart(8)} ms ${(flops / wallMs / 1e9).toFixed(1).padStart(7)} TFLOP/s`;
    console.log(line);
    rows.push(line);
  } catch (e) {
    console.log(`${name}: FAILED ${(e as Error).message.slice(0, 1500)}`);
  }
}

for (const mode of ["reg", "wg", "wg-nopad", "wg-stash", "wg-stores", "wg-barrier", "global"] as Mode[]) {
  await micro({ mode, W: 8, FM: 4, FN: 2, result: "f32" });
  await micro({ mode, W: 4, FM: 4, FN: 4, result: "f32" });
}
await micro({ mode: "reg", W: 8, FM: 4, FN: 2, result: "f16" });
await micro({ mode: "wg", W: 8, FM: 4, FN: 2, result: "f16" });
await micro({ mode: "reg", W: 4, FM: 2, FN: 2, result: "f32" });
await micro({ mode: "reg", W: 16, FM: 2, FN: 2, result: "f32" });

// The real GEMM, 4096³, for comparison.
{
  const n = 4096;
  const a = ctx.pool.upload(new Uint16Array(n * n).fill(0x2c00));
  const b = ctx.pool.upload(new Uint16Array(n * n).fill(0x2c00));
  const c = ctx.pool.acquire(n * n * 2);
  const { gpuMs, wallMs } = await timeKernel(ctx, REPS, (rec) =>
    recordTcGemm(
      ctx,
      rec,
      { a: { buffer: a, dims: [n, n] }, b: { buffer: b, dims: [n, n] }, out: { buffer: c, dims: [n, n] } },
      { M: n, N: n, K: n, batch: 1, bBatch: 1, nBatch: 1 },
      syntax,
      "gemm",
      f16.multiSubgroup,
      f16.sgBuiltin,
    ),
  );
  const flops = 2 * n ** 3;
  console.log(
    `${"gemm-tc 4096³ (auto tile)".padEnd(28)} gpu ${gpuMs.toFixed(3).padStart(8)} ms ${(flops / gpuMs / 1e9).toFixed(1).padStart(7)} TFLOP/s | wall ${wallMs.toFixed(3).padStart(8)} ms ${(flops / wallMs / 1e9).toFixed(1).padStart(7)} TFLOP/s`,
  );
}
ctx.dispose();
