import assert from "node:assert/strict";
import { after, test } from "node:test";
import { bucketSize } from "../src/backends/webgpu/buffer-pool.js";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { dawnFlags, robustnessWanted } from "../src/backends/webgpu/device.js";
import { binary, unary } from "../src/backends/webgpu/kernels/elementwise.js";
import { gemm } from "../src/backends/webgpu/kernels/gemm.js";
import { gather } from "../src/backends/webgpu/kernels/layout.js";
import { layerNorm, skipLayerNorm, softmax } from "../src/backends/webgpu/kernels/norm.js";
import { OpError } from "../src/errors.js";
import {
  assertClose,
  disposeGpuContext,
  empty,
  gelu,
  gpuContext,
  rand,
  read,
  upload,
} from "./webgpu-helpers.js";

after(disposeGpuContext);

async function withGpu(t: { skip(msg: string): void }): Promise<WebGpuContext | undefined> {
  const c = await gpuContext();
  if (typeof c === "string") {
    t.skip(c);
    return undefined;
  }
  return c;
}

test("bucketSize: powers of two and 1.5x, at least 256", () => {
  assert.equal(bucketSize(1), 256);
  assert.equal(bucketSize(300), 384);
  assert.equal(bucketSize(700), 768);
  assert.equal(bucketSize(1000), 1024);
  assert.equal(bucketSize(1024), 1024);
});

test("dawnFlags: one enable and one disable flag, toggles merged in order without repeats", () => {
  assert.deepEqual(
    dawnFlags([
      "enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia",
      "disable-dawn-features=timestamp_quantization",
      "backend=vulkan",
      "enable-dawn-features=disable_robustness,allow_unsafe_apis",
    ]),
    [
      "backend=vulkan",
      "enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness",
      "disable-dawn-features=timestamp_quantization",
    ],
  );
  assert.deepEqual(dawnFlags([]), []);
});

test("robustness: off by default, on by option or MHAFUSE_WEBGPU_ROBUSTNESS=1; results are the same", async (t) => {
  const saved = process.env.MHAFUSE_WEBGPU_ROBUSTNESS;
  try {
    delete process.env.MHAFUSE_WEBGPU_ROBUSTNESS;
    assert.equal(robustnessWanted({}), false);
    assert.equal(robustnessWanted({ robustness: true }), true);
    process.env.MHAFUSE_WEBGPU_ROBUSTNESS = "1";
    assert.equal(robustnessWanted({}), true);
    assert.equal(robustnessWanted({ robustness: false }), false);
  } finally {
    if (saved === undefined) delete process.env.MHAFUSE_WEBGPU_ROBUSTNESS;
    else process.env.MHAFUSE_WEBGPU_ROBUSTNESS = saved;
  }
  const ctx = await withGpu(t);
  if (!ctx) return;
  assert.equal(ctx.gpu.robustness, robustnessWanted({}));
  // The same GEMM (edge tiles: 33 × 17 over K = 20) with Dawn's bounds clamps on and off: identical bits.
  const robust = await WebGpuContext.create({ robustness: true });
  try {
    assert.equal(robust.gpu.robustness, true);
    const A = rand(33 * 20, 11);
    const B = rand(20 * 17, 12);
    const results: Float32Array[] = [];
    for (const c of [ctx, robust]) {
      const out = empty(c, [33, 17]);
      const rec = c.recorder();
      gemm(c, rec, { a: upload(c, A, [33, 20]), b: upload(c, B, [20, 17]), out });
      await rec.submit();
      results.push(await read(c, out));
    }
    assert.deepEqual(results[0], results[1]);
  } finally {
    robust.dispose();
  }
});

test("device: features and limits are reported, the pool reuses buffers", async (t) => {
  const ctx = await withGpu(t);
  if (!ctx) return;
  const f = ctx.gpu.features;
  assert.equal(typeof f.subgroups, "boolean");
  assert.ok(ctx.gpu.limits.maxComputeWorkgroupStorageSize >= 16384);
  const a = ctx.pool.acquire(1000);
  ctx.pool.release(a);
  const b = ctx.pool.acquire(900);
  assert.equal(a, b, "same bucket → same buffer");
  ctx.pool.release(b);
  const x = rand(37, 1);
  const buf = ctx.pool.upload(x);
  assert.deepEqual(await ctx.pool.readFloat32(buf, 37), x);
  ctx.pool.release(buf);
});

test("binary ops broadcast like numpy; one pipeline serves every shape of a rank", async (t) => {
  const ctx = await withGpu(t);
  if (!ctx) return;
  const cases: [number[], number[]][] = [
    [[3, 5, 7], [7]],
    [
      [2, 1, 4],
      [3, 1],
    ],
    [[1], [6, 5]],
    [
      [4, 3, 2],
      [4, 3, 2],
    ],
  ];
  const rec = ctx.recorder();
  const outs: { out: ReturnType<typeof empty>; want: Float64Array }[] = [];
  let seed = 10;
  for (const [da, db] of cases)
    for (const op of ["Add", "Mul", "Sub", "Div"] as const) {
      const sa = da.reduce((p, q) => p * q, 1);
      const sb = db.reduce((p, q) => p * q, 1);
      const av = rand(sa, seed++);
      const bv = rand(sb, seed++).map((v) => v + 2);
      const r = Math.max(da.length, db.length);
      const pa = [...Array(r - da.length).fill(1), ...da];
      const pb = [...Array(r - db.length).fill(1), ...db];
      const shape = pa.map((d, i) => Math.max(d, pb[i]!));
      const total = shape.reduce((p, q) => p * q, 1);
      const want = new Float64Array(total);
      for (let i = 0; i < total; i++) {
        let rem = i;
        let ia = 0;
        let ib = 0;
        let ma = 1;
        let mb = 1;
        for (let ax = r - 1; ax >= 0; ax--) {
          const c = rem % shape[ax]!;
          rem = Math.floor(rem / shape[ax]!);
          if (pa[ax] !== 1) ia += c * ma;
          if (pb[ax] !== 1) ib += c * mb;
          ma *= pa[ax]!;
          mb *= pb[ax]!;
        }
        const x = av[ia]!;
        const y = bv[ib]!;
        want[i] = op === "Add" ? x + y : op === "Mul" ? x * y : op === "Sub" ? x - y : x / y;
      }
      const out = empty(ctx, shape);
      binary(ctx, rec, op, upload(ctx, av, da), upload(ctx, bv, db), out);
      outs.push({ out, want });
    }
  await rec.submit();
  for (const [i, { out, want }] of outs.entries()) assertClose(await read(ctx, out), want, 1e-6, `case ${i}`);
  assert.ok(ctx.pipelines.size <= 12, `pipelines per (op, rank), got ${ctx.pipelines.size}`);
  assert.throws(
    () => binary(ctx, ctx.recorder(), "Add", empty(ctx, [3, 4]), empty(ctx, [5]), empty(ctx, [3, 4])),
    (e: unknown) => e instanceof OpError && /webgpu\.Add.*do not broadcast/.test(e.message),
  );
});

test("GELU (erf) matches float64, NaN stays NaN", async (t) => {
  const ctx = await withGpu(t);
  if (!ctx) return;
  const x = rand(1001, 3, 6);
  x[5] = Number.NaN;
  x[6] = 0;
  x[7] = -30;
  x[8] = 30;
  const out = empty(ctx, [1001]);
  const rec = ctx.recorder();
  unary(ctx, rec, "Gelu", upload(ctx, x, [1001]), out);
  await rec.submit();
  assertClose(await read(ctx, out), Array.from(x, gelu), 1e-5, "gelu");
});

function refLayerNorm(v: Float64Array, gamma: Float32Array, beta: Float32Array | undefined, eps: number) {
  const n = v.length;
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  const inv = 1 / Math.sqrt(variance + eps);
  return Array.from(v, (x, j) => (x - mean) * inv * gamma[j]! + (beta ? beta[j]! : 0));
}

test("LayerNorm and SkipLayerNorm match float64 (odd widths, large means, sum output; both kernels)", async (t) => {
  const ctx = await withGpu(t);
  if (!ctx) return;
  // The device's choice — the row-group kernel (lanes of a subgroup per row, the row in registers; the last
  // workgroup's groups past the rows write nothing; vec4 loads where rows are whole vec4s) where it applies —,
  // the row-group kernel with scalar loads, and the workgroup-per-row kernel.
  for (const [rowGroup, scalarLoads] of [
    [undefined, false],
    [undefined, true],
    [0, false],
  ] as const)
    for (const [rows, width] of [
      [3, 7],
      [5, 768],
      [2, 1000],
      [1, 1],
      [70, 64],
      // 32 values per lane at 8 lanes per row (lavapipe): the row-group kernel's widest row there, and one wider.
      [9, 256],
      [3, 257],
    ] as const) {
      const x = rand(rows * width, rows + width).map((v, i) => v * 3 + (i % 2 ? 10 : 0));
      const skip = rand(rows * width, 7);
      const gamma = rand(width, 8).map((v) => v + 1);
      const beta = rand(width, 9);
      const bias = rand(width, 10);
      const eps = 1e-5;
      const dims = [rows, width];
      const out1 = empty(ctx, dims);
      const out2 = empty(ctx, dims);
      const sum = empty(ctx, dims);
      const out3 = empty(ctx, dims);
      const rec = ctx.recorder();
      // What every call shares: input, scale, epsilon and the kernel choice under test.
      const common = {
        x: upload(ctx, x, dims),
        gamma: upload(ctx, gamma, [width]),
        epsilon: eps,
        rowGroup,
        scalarLoads,
      };
      const betaB = upload(ctx, beta, [width]);
      const skipB = upload(ctx, skip, dims);
      layerNorm(ctx, rec, { ...common, beta: betaB, out: out1 });
      skipLayerNorm(ctx, rec, {
        ...common,
        skip: skipB,
        beta: betaB,
        bias: upload(ctx, bias, [width]),
        out: out2,
        sum,
      });
      skipLayerNorm(ctx, rec, { ...common, skip: skipB, out: out3 });
      await rec.submit();
      const want1: number[] = [];
      const want2: number[] = [];
      const wantSum: number[] = [];
      const want3: number[] = [];
      for (let r = 0; r < rows; r++) {
        const row = Float64Array.from({ length: width }, (_, j) => x[r * width + j]!);
        const s = Float64Array.from(row, (v, j) => v + skip[r * width + j]! + bias[j]!);
        const s3 = Float64Array.from(row, (v, j) => v + skip[r * width + j]!);
        want1.push(...refLayerNorm(row, gamma, beta, eps));
        want2.push(...refLayerNorm(s, gamma, beta, eps));
        wantSum.push(...s);
        want3.push(...refLayerNorm(s3, gamma, undefined, eps));
      }
      const k = `${rows}x${width} rowGroup ${rowGroup ?? "default"}${scalarLoads ? " scalar loads" : ""}`;
      assertClose(await read(ctx, out1), want1, 1e-4, `layernorm ${k}`);
      assertClose(await read(ctx, out2), want2, 1e-4, `skiplayernorm ${k}`);
      assertClose(await read(ctx, sum), wantSum, 1e-5, `skip sum ${k}`);
      assertClose(await read(ctx, out3), want3, 1e-4, `skiplayernorm (no beta/bias) ${k}`);
    }
});

test("norms: no rows is no dispatch; a forced row group must fit one subgroup (OpError)", async (t) => {
  const ctx = await withGpu(t);
  if (!ctx) return;
  const g = upload(ctx, Float32Array.from([1, 1, 1, 1]), [4]);
  const rec = ctx.recorder();
  layerNorm(ctx, rec, { x: empty(ctx, [0, 4]), gamma: g, out: empty(ctx, [0, 4]), epsilon: 1e-5 });
  skipLayerNorm(ctx, rec, {
    x: empty(ctx, [0, 4]),
    skip: empty(ctx, [0, 4]),
    gamma: g,
    out: empty(ctx, [0, 4]),
    epsilon: 1e-5,
  });
  await rec.submit();
  const sg = ctx.gpu.features.subgroupMinSize;
  for (const rowGroup of [3, 2 * Math.max(sg, 32)])
    assert.throws(
      () =>
        layerNorm(ctx, ctx.recorder(), {
          x: empty(ctx, [2, 4]),
          gamma: g,
          out: empty(ctx, [2, 4]),
          epsilon: 1e-5,
          rowGroup,
        }),
      (e: unknown) => e instanceof OpError && /rowGroup/.test(e.message),
      `rowGroup ${rowGroup}`,
    );
});

test("Softmax over the last axis matches float64, -inf entries give 0", async (t) => {
  const ctx = await withGpu(t);
  if (!ctx) return;
  for (const [rows, width] of [
    [4, 5],
    [3, 513],
    [66000, 2],
  ] as const) {
    const x = rand(rows * width, width, 8);
    if (width > 2) x[1] = Number.NEGATIVE_INFINITY;
    const out = empty(ctx, [rows, width]);
    const rec = ctx.recorder();
    softmax(ctx, rec, upload(ctx, x, [rows, width]), out);
    await rec.submit();
    const want: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * width, (r + 1) * width));
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      want.push(...e.map((v) => v / s));
    }
    assertClose(await read(ctx, out), want, 1e-6, `softmax ${rows}x${width}`);
  }
});

test("gather with zeroNegative: padded rows are zeros and never read, even from an empty tensor", async (t) => {
  const ctx = await withGpu(t);
  if (!ctx) return;
  // RestorePadding of a batch whose every token is padding: no rows to read, every index -1.
  const hidden = 768;
  for (const [rows, idx] of [
    [0, [-1, -1, -1]],
    [2, [1, -1, 0]],
  ] as const) {
    const x = rand(Math.max(rows * hidden, 1), 7);
    const data =
      rows > 0 ? upload(ctx, x, [1, rows, hidden]) : { buffer: ctx.pool.acquire(4), dims: [1, 0, hidden] };
    const out = empty(ctx, [1, idx.length, hidden]);
    const rec = ctx.recorder();
    gather(ctx, rec, data, 1, ctx.pool.upload(Int32Array.from(idx)), idx.length, out, true);
    await rec.submit();
    const got = await read(ctx, out);
    const want = new Float32Array(idx.length * hidden);
    idx.forEach((r, n) => {
      if (r >= 0) want.set(x.subarray(r * hidden, (r + 1) * hidden), n * hidden);
    });
    assert.deepEqual(got, want, `rows ${rows}, indices ${idx}`);
  }
});
