// Localises the tensor-core attention error: S=16, B=1, N=1, H=16, structured inputs.
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { packedQkvAttention } from "../src/backends/webgpu/kernels/attention.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { fromF16, toF16 } from "../src/backends/webgpu/precision.js";

const ctx = await WebGpuContext.create({ unsafeF16: true });
const S = 16,
  H = 16,
  E = H;
const rnd = (i: number) => Math.round(((Math.sin(i * 12.9898) * 43758.5453) % 1) * 8) / 8;
async function run(
  q: (i: number, h: number) => number,
  k: (j: number, h: number) => number,
  v: (j: number, h: number) => number,
  kernel: "simt" | "tensor-core",
) {
  const qkv = new Float32Array(S * 3 * E);
  for (let i = 0; i < S; i++)
    for (let h = 0; h < H; h++) {
      qkv[i * 3 * E + h] = q(i, h);
      qkv[i * 3 * E + H + h] = k(i, h);
      qkv[i * 3 * E + 2 * H + h] = v(i, h);
    }
  const out: GpuTensor = { buffer: ctx.pool.acquire(2 * S * E + 4), dims: [S, 1, E] };
  const rec = ctx.recorder();
  packedQkvAttention(ctx, rec, {
    qkv: { buffer: ctx.pool.upload(toF16(qkv)), dims: [S, 1, 3 * E] },
    numHeads: 1,
    out,
    precision: "fp16",
    f16Kernel: kernel,
  });
  await rec.submit();
  return fromF16(new Uint16Array(await ctx.pool.readback(out.buffer, 2 * S * E)), S * E);
}
const fmt = (a: Float32Array, rows = 4) =>
  Array.from({ length: rows }, (_, i) =>
    Array.from(a.subarray(i * E, i * E + E), (x) => x.toFixed(3).padStart(6)).join(" "),
  ).join("\n");
type F = (i: number, h: number) => number;
const cases: [string, F, F, F][] = [
  ["Q=0, V=j (row index)", () => 0, (j: number, h: number) => rnd(j * 16 + h), (j: number) => j / 16],
  [
    "Q=0, V=h (column index)",
    () => 0,
    (j: number, h: number) => rnd(j * 16 + h),
    (_j: number, h: number) => h / 16,
  ],
  ["Q=0, V=delta(j,h)", () => 0, () => 0, (j: number, h: number) => (j === h ? 1 : 0)],
  [
    "Q,K random (x4), V=delta(j,h): output = P",
    (i: number, h: number) => 4 * rnd(1000 + i * 16 + h),
    (j: number, h: number) => rnd(2000 + j * 16 + h),
    (j: number, h: number) => (j === h ? 1 : 0),
  ],
  [
    "Q=delta(i,h)*8, K=delta(j,h)*8, V=delta: P ≈ identity",
    (i: number, h: number) => (i === h ? 3 : 0),
    (j: number, h: number) => (j === h ? 3 : 0),
    (j: number, h: number) => (j === h ? 1 : 0),
  ],
];
for (const [name, q, k, v] of cases) {
  const a = await run(q, k, v, "simt");
  const b = await run(q, k, v, "tensor-core");
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  console.log(`== ${name}: max |tc - simt| ${d.toFixed(4)}\n-- simt\n${fmt(a)}\n-- tc\n${fmt(b)}`);
}
