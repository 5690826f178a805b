// Localises the tensor-core attention error: S=16, B=1, N=1, H=16, structured inputs.
//  1. packedQkvAttention (the kernel sessions get) against SIMT on five structured cases;
//  2. the probe kernel (TcAttentionConfig.debug) run directly, old (4-byte `var<workgroup> wgKvEnd: u32`) and
//     fixed (no workgroup scalar), one subgroup and (where detected) four: every Q/K/V element carries its source
//     (Q (i, h) = (16 i + h) / 256, K = 1 + …, V = 2 + …), and the fragments as loaded (subgroupMatrixStore of
//     q0, the first K and V fragments), the staged Qs/Ks/Vs read element by element, and the first S tile are
//     decoded: "shift" is the most common (source column − expected column) in halves; 0 is right.
// node --import tsx bench/tc-attention-probe.ts
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { packedQkvAttention } from "../src/backends/webgpu/kernels/attention.js";
import {
  singleHeadTcUniforms,
  TC_DEBUG_LAYOUT,
  type TcAttentionConfig,
  tcAttentionSource,
  tcAttentionSupports,
} from "../src/backends/webgpu/kernels/attention-tc.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { fromF16, toF16 } from "../src/backends/webgpu/precision.js";

const ctx = await WebGpuContext.create({ unsafeF16: true });
console.log(`f16 support: ${JSON.stringify(ctx.f16)}`);
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
type Fill = (row: number, col: number) => number;
const cases: [string, Fill, Fill, Fill][] = [
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
console.log("== 1. packedQkvAttention (fixed kernel) vs SIMT");
for (const [name, q, k, v] of cases) {
  const a = await run(q, k, v, "simt");
  let b: Float32Array;
  try {
    b = await run(q, k, v, "tensor-core");
  } catch (e) {
    console.log(`== ${name}: tensor-core: ${(e as Error).message.slice(0, 200)}`);
    continue;
  }
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  console.log(
    `== ${name}: max |tc - simt| ${d.toFixed(4)} ${d <= 2e-3 ? "ok" : "BAD"}\n-- simt\n${fmt(a)}\n-- tc\n${fmt(b)}`,
  );
}

// 2. The probe kernel, old and fixed.
const f = ctx.f16;
if (!f?.syntax) {
  console.log(`== 2. skipped: no tensor cores (${f?.reason})`);
} else {
  const qkv = new Float32Array(S * 3 * H);
  for (let i = 0; i < S; i++)
    for (let h = 0; h < H; h++)
      for (let a = 0; a < 3; a++) qkv[i * 3 * H + a * H + h] = a + (16 * i + h) / 256;
  const name = ["Q", "K", "V"];
  const decode = (x: number) => {
    const a = Math.floor(x);
    const idx = Math.round((x - a) * 256);
    return { a, row: idx >> 4, col: idx & 15 };
  };
  /** got(r, c) should be source `a` at (row(r, c), col(r, c)): matches, most common column shift, first row decoded. */
  const check = (
    got: (r: number, c: number) => number,
    a: number,
    row: (r: number, c: number) => number,
    col: (r: number, c: number) => number,
  ) => {
    let ok = 0;
    const shifts = new Map<string, number>();
    const first: string[] = [];
    for (let r = 0; r < 16; r++)
      for (let c = 0; c < 16; c++) {
        const x = got(r, c);
        const d = decode(x);
        const want = a + (16 * row(r, c) + col(r, c)) / 256;
        if (x === want) ok++;
        const key =
          x === 0
            ? "zero"
            : d.a !== a
              ? `other(${name[d.a] ?? d.a})`
              : `row${d.row - row(r, c) >= 0 ? "+" : ""}${d.row - row(r, c)},col${d.col - col(r, c) >= 0 ? "+" : ""}${d.col - col(r, c)}`;
        shifts.set(key, (shifts.get(key) ?? 0) + 1);
        if (r === 0 && c < 6) first.push(x === 0 ? "0" : `${name[d.a] ?? d.a}(${d.row},${d.col})`);
      }
    const top = [...shifts]
      .sort((p, q) => q[1] - p[1])
      .slice(0, 3)
      .map(([k, n]) => `${k}:${n}`)
      .join(" ");
    return `${ok === 256 ? "RIGHT" : "WRONG"} ${ok}/256 [${top}] row 0: ${first.join(" ")}`;
  };
  const limit = ctx.gpu.limits.maxComputeWorkgroupStorageSize;
  const variants: [string, TcAttentionConfig][] = [];
  for (const kvEndVar of [true, false]) {
    variants.push([
      `${kvEndVar ? "old  " : "fixed"} 1sg`,
      { multi: false, H, lengths: false, cu: false, debug: true, kvEndVar },
    ]);
    if (f.multiSubgroup && tcAttentionSupports(H, H, limit, true))
      variants.push([
        `${kvEndVar ? "old  " : "fixed"} 4sg${f.sgBuiltin ? "(subgroup_id)" : ""}`,
        { multi: true, sgBuiltin: !!f.sgBuiltin, H, lengths: false, cu: false, debug: true, kvEndVar },
      ]);
  }
  const simt = await run(
    (i: number, h: number) => qkv[i * 3 * H + h]!,
    (j: number, h: number) => qkv[j * 3 * H + H + h]!,
    (j: number, h: number) => qkv[j * 3 * H + 2 * H + h]!,
    "simt",
  );
  for (const [label, c] of variants) {
    try {
      const k = ctx.pipelines.get(`probe:${label}`, () => tcAttentionSource(c, f.syntax!));
      const u = singleHeadTcUniforms(S, H, 0.25);
      const buf = ctx.pool.upload(toF16(qkv));
      const out = ctx.pool.acquire(2 * S * H);
      const dh = ctx.pool.acquire(2 * TC_DEBUG_LAYOUT.halves);
      const df = ctx.pool.acquire(4 * TC_DEBUG_LAYOUT.floats);
      const rec = ctx.recorder();
      rec.dispatch(k, [buf, buf, buf, out, dh, df], u, [1, 1, 1]);
      await rec.submit();
      const hh = fromF16(new Uint16Array(await ctx.pool.readback(dh, 2 * TC_DEBUG_LAYOUT.halves)));
      const ff = await ctx.pool.readFloat32(df, TC_DEBUG_LAYOUT.floats);
      const o = fromF16(new Uint16Array(await ctx.pool.readback(out, 2 * S * H)));
      let d = 0;
      for (let i = 0; i < o.length; i++) d = Math.max(d, Math.abs(o[i]! - simt[i]!));
      const src = (a: number, r: number, c: number) => a + (16 * r + c) / 256;
      let sWorst = 0;
      for (let r = 0; r < 16; r++)
        for (let c = 0; c < 16; c++) {
          let s = 0;
          for (let x = 0; x < 16; x++) s += src(0, r, x) * src(1, c, x);
          sWorst = Math.max(sWorst, Math.abs(ff[r * 16 + c]! - s) / Math.abs(s));
        }
      console.log(
        `== 2. ${label}: output max |tc - simt| ${d.toFixed(4)} ${d <= 2e-3 ? "ok" : "BAD"}; S tile max rel err ${sWorst.toExponential(2)}`,
      );
      console.log(
        `   Qs (scalar)      ${check(
          (r, c) => hh[8192 + r * 24 + c]!,
          0,
          (r) => r,
          (_r, c) => c,
        )}`,
      );
      console.log(
        `   Ks (scalar)      ${check(
          (r, c) => hh[8576 + r * 24 + c]!,
          1,
          (r) => r,
          (_r, c) => c,
        )}`,
      );
      console.log(
        `   Vs (scalar)      ${check(
          (r, c) => hh[8960 + r * 24 + c]!,
          2,
          (r) => r,
          (_r, c) => c,
        )}`,
      );
      console.log(
        `   q0 fragment      ${check(
          (r, c) => hh[r * 16 + c]!,
          0,
          (r) => r,
          (_r, c) => c,
        )}`,
      );
      console.log(
        `   K fragment (h,j) ${check(
          (r, c) => hh[256 + r * 16 + c]!,
          1,
          (_r, c) => c,
          (r) => r,
        )}  (source row = key j, col = h)`,
      );
      console.log(
        `   V fragment (j,h) ${check(
          (r, c) => hh[512 + r * 16 + c]!,
          2,
          (r) => r,
          (_r, c) => c,
        )}`,
      );
    } catch (e) {
      console.log(`== 2. ${label}: ${(e as Error).message.slice(0, 300)}`);
    }
  }
}
ctx.dispose();
