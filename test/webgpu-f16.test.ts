/**
 * fp16 kernels (issue 11) against float64 references computed from the same f16-rounded inputs, so the
 * bounds measure the kernels (f32 accumulation, f16 rounding of P and of the output), not input rounding:
 *  - GEMM: max |diff| per row ≤ 1e-2 · rms of the reference row (output rounding alone is ≤ 2^-11 relative);
 *  - attention, unit-scale inputs: max |diff| ≤ 2e-3.
 * Every kernel the device has runs: the SIMT fp16 kernels everywhere (lavapipe in CI), the tensor-core kernels
 * where the adapter exposes subgroup matrices (the H200, with Dawn's unsafe toggles; log in bench/).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import type { WebGpuDevice } from "../src/backends/webgpu/device.js";
import {
  generalAttention,
  packedQkvAttention,
  varSeqlenQkvAttention,
} from "../src/backends/webgpu/kernels/attention.js";
import type { TcAttentionVariant } from "../src/backends/webgpu/kernels/attention-tc.js";
import { castF16ToF32, castF32ToF16 } from "../src/backends/webgpu/kernels/cast.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { gemm } from "../src/backends/webgpu/kernels/gemm.js";
import {
  FRAG_16,
  TC_TILE_DIRECT,
  TC_TILE_DIRECT_SOLO,
  TC_TILE_HUGE,
  TC_TILE_LARGE,
  TC_TILE_LARGE_K64,
  TC_TILE_LARGE_W4,
  TC_TILE_SMALL,
  TC_TILE_SOLO,
  TC_TILE_WIDE,
  TC_TILE_WIDE12,
  type TcFlags,
  type TcFrag,
  type TcTile,
  tcFlagsFor,
  tcGemmDirectSource,
  tcGemmKey,
  tcGemmSource,
  tcSharedBytes,
  tcTileFor,
} from "../src/backends/webgpu/kernels/gemm-tc.js";
import {
  detectF16,
  type F16Kernel,
  f16Bits,
  f16ToNumber,
  fromF16,
  type MatrixSyntax,
  resolvePrecision,
  toF16,
} from "../src/backends/webgpu/precision.js";
import { MhafuseError, OpError } from "../src/errors.js";
import { emulateSubgroupMatrices } from "./tc-emulation.js";
import { gelu, rand, webgpuUnavailable } from "./webgpu-helpers.js";

let ctxPromise: Promise<WebGpuContext | string> | undefined;
function f16Context(): Promise<WebGpuContext | string> {
  ctxPromise ??= WebGpuContext.create({ unsafeF16: true }).catch((e: unknown) => {
    const reason = webgpuUnavailable(e);
    if (reason !== undefined) return reason;
    throw e;
  });
  return ctxPromise;
}
after(async () => {
  const c = await ctxPromise;
  if (c instanceof WebGpuContext) c.dispose();
});

const round16 = (x: Float32Array) => fromF16(toF16(x), x.length);
const up16 = (ctx: WebGpuContext, x: Float32Array, dims: number[]): GpuTensor => ({
  buffer: ctx.pool.upload(toF16(x)),
  dims,
});
const empty16 = (ctx: WebGpuContext, dims: number[]): GpuTensor => {
  const n = dims.reduce((a, b) => a * b, 1);
  return { buffer: ctx.pool.acquire(Math.max(4, 2 * (n + (n & 1)))), dims };
};
async function read16(ctx: WebGpuContext, t: GpuTensor): Promise<Float32Array> {
  const n = t.dims.reduce((a, b) => a * b, 1);
  return fromF16(new Uint16Array(await ctx.pool.readback(t.buffer, 2 * (n + (n & 1)))), n);
}
function kernels(ctx: WebGpuContext): F16Kernel[] {
  return ctx.f16?.syntax ? ["simt", "tensor-core"] : ["simt"];
}
/** Attention: both kernels where the device has tensor cores, as sessions use them (MHAFUSE_TC_ATTENTION=0: SIMT). */
function attentionKernels(ctx: WebGpuContext): F16Kernel[] {
  return process.env.MHAFUSE_TC_ATTENTION === "0" ? ["simt"] : kernels(ctx);
}

test("host f16 conversion: exact values, round to nearest even, subnormals, overflow, NaN", () => {
  assert.equal(f16Bits(1), 0x3c00);
  assert.equal(f16Bits(-2), 0xc000);
  assert.equal(f16Bits(65504), 0x7bff);
  assert.equal(f16Bits(65520), 0x7c00); // halfway to 2^16 rounds to even = Inf
  assert.equal(f16Bits(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(f16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.equal(f16Bits(2 ** -24), 0x0001);
  assert.equal(f16Bits(2 ** -26), 0);
  assert.equal(f16Bits(Number.NEGATIVE_INFINITY), 0xfc00);
  assert.ok(Number.isNaN(f16ToNumber(f16Bits(Number.NaN))));
  for (const x of [0.1, -2.5e-3, 1e-5, 1234.5, 6e-8]) {
    const y = f16ToNumber(f16Bits(x));
    assert.ok(Math.abs(y - x) <= Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), `${x} → ${y}`);
  }
});

test("precision resolution: fp16 → SIMT without subgroup matrices, → fp32 without shader-f16, one notice", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  assert.deepEqual(await ctx.resolvePrecision("fp32"), { precision: "fp32" });
  const r = await ctx.resolvePrecision("fp16");
  if (ctx.gpu.features.shaderF16) {
    assert.equal(r.precision, "fp16");
    assert.equal(r.kernel, ctx.f16?.syntax ? "tensor-core" : "simt");
    if (!ctx.f16?.syntax) assert.match(r.notice ?? "", /fp16 without tensor cores/);
  } else assert.equal(r.precision, "fp32");
  console.log(
    `# f16 support: ${JSON.stringify(ctx.f16)}; configs ${JSON.stringify(ctx.gpu.features.subgroupMatrixConfigs)}`,
  );
  // A device without shader-f16 (features stubbed): fp16 resolves to fp32, the notice printed once.
  const fake = { features: { ...ctx.gpu.features, shaderF16: false } } as unknown as WebGpuDevice;
  const warn = console.warn;
  const lines: string[] = [];
  console.warn = (s: string) => lines.push(s);
  try {
    const a = await resolvePrecision(fake, "fp16");
    const b = await resolvePrecision(fake, "fp16");
    assert.equal(a.precision, "fp32");
    assert.equal(b.precision, "fp32");
    assert.match(a.notice ?? "", /running fp32: the adapter has no shader-f16/);
  } finally {
    console.warn = warn;
  }
  assert.equal(lines.length, 1);
});

/**
 * A device whose shader compiler accepts only what `accepts` says (no GPU needed): the run-time probe of the
 * subgroupMatrixLoad/Store spelling sees compilation errors exactly as Dawn reports them.
 */
function probeDevice(
  accepts: (code: string) => boolean,
  adapter: { configs?: [number, number, number][]; sizes?: [number, number] } = {},
): WebGpuDevice {
  const [subgroupMinSize, subgroupMaxSize] = adapter.sizes ?? [32, 32];
  const features = {
    subgroups: true,
    shaderF16: true,
    timestampQuery: false,
    subgroupMatrix: true,
    subgroupMinSize,
    subgroupMaxSize,
    subgroupsInOrder: true,
    subgroupMatrixConfigs: (adapter.configs ?? [[16, 16, 16]]).map(([M, N, K]) => ({
      componentType: "f16",
      resultComponentType: "f32",
      M,
      N,
      K,
    })),
  };
  const device = {
    pushErrorScope: () => {},
    popErrorScope: async () => null,
    createShaderModule: ({ code }: { code: string }) => ({
      getCompilationInfo: async () => ({
        messages: accepts(code) ? [] : [{ type: "error", message: "rejected" }],
      }),
    }),
    createComputePipelineAsync: async () => ({}),
  };
  return { features, device } as unknown as WebGpuDevice;
}

test("the subgroup-matrix spelling is probed at run time: template where it compiles, else the older bool form", async () => {
  const templateForm = /_major>\(/; // subgroupMatrixLoad<T, row_major>( and subgroupMatrixStore<row_major>(
  const onlyBool = await detectF16(probeDevice((code) => !templateForm.test(code)));
  assert.equal(onlyBool.syntax, "bool");
  assert.equal(onlyBool.multiSubgroup, true);
  const both = await detectF16(probeDevice(() => true));
  assert.equal(both.syntax, "template");
  const onlyTemplate = await detectF16(probeDevice((code) => !/subgroupMatrixStore\(/.test(code)));
  assert.equal(onlyTemplate.syntax, "template");
  // Neither: no tensor cores, fp16 on the SIMT kernels with the reason in its notice.
  const neither = probeDevice(() => false);
  assert.equal((await detectF16(neither)).syntax, undefined);
  const warn = console.warn;
  const lines: string[] = [];
  console.warn = (s: string) => lines.push(s);
  try {
    const r = await resolvePrecision(neither, "fp16");
    assert.deepEqual([r.precision, r.kernel], ["fp16", "simt"]);
    assert.match(r.notice ?? "", /neither subgroupMatrixLoad spelling compiled/);
  } finally {
    console.warn = warn;
  }
  assert.equal(lines.length, 1);
  // A device with only the bool spelling still gets the tensor-core kernels (written in that spelling: the
  // emulated GEMM and attention tests run them).
  assert.deepEqual(
    await resolvePrecision(
      probeDevice((code) => !templateForm.test(code)),
      "fp16",
    ),
    {
      precision: "fp16",
      kernel: "tensor-core",
    },
  );
});

test("Intel's 8×16×16 config is taken on 16-wide subgroups (the probe compiled for 16 lanes), refused where the size varies", async () => {
  const codes: string[] = [];
  const intel = probeDevice(
    (code) => {
      codes.push(code);
      return true;
    },
    { configs: [[8, 16, 16]], sizes: [16, 16] },
  );
  const s = await detectF16(intel);
  assert.deepEqual([s.config?.M, s.config?.N, s.config?.K, s.syntax], [8, 16, 16, "template"]);
  assert.ok(
    codes.length > 0 && codes.every((c) => /@workgroup_size\((16|32)\)/.test(c)),
    "probes laid out for 16 lanes",
  );
  assert.ok(codes.some((c) => c.includes("(lid / 16u)")));
  assert.deepEqual(await resolvePrecision(intel, "fp16"), { precision: "fp16", kernel: "tensor-core" });
  // Sizes 8–32 (no size control): the kernels' 16-lane layout is not what a pipeline would get.
  const varying = probeDevice(() => true, { configs: [[8, 16, 16]], sizes: [8, 32] });
  const v = await detectF16(varying);
  assert.equal(v.syntax, undefined);
  assert.match(v.reason ?? "", /subgroup size 8-32: the 8×16×16 kernels need 16/);
  // A 16×16×16 config on 16-wide subgroups is refused too (its kernels need 32).
  const narrow = await detectF16(probeDevice(() => true, { configs: [[16, 16, 16]], sizes: [16, 16] }));
  assert.match(narrow.reason ?? "", /need 32/);
});

/** float64 C = A·B (+bias) (gelu) (+R) from f16-rounded inputs. */
function gemmRef(
  A: Float32Array,
  B: Float32Array,
  batch: number,
  bB: boolean,
  M: number,
  N: number,
  K: number,
  bias?: Float32Array,
  g = false,
  R?: Float32Array,
) {
  const C = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[b * M * K + m * K + k]! * B[(bB ? b * K * N : 0) + k * N + n]!;
        if (bias) s += bias[n]!;
        if (g) s = gelu(s);
        if (R) s += R[b * M * N + m * N + n]!;
        C[b * M * N + m * N + n] = s;
      }
  return C;
}

/** Asserts max |diff| of each row ≤ tol · rms(reference row); returns the worst ratio seen. */
function assertRows(
  got: Float32Array,
  want: Float64Array,
  rows: number,
  N: number,
  tol: number,
  what: string,
): number {
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    let md = 0;
    for (let n = 0; n < N; n++) {
      ss += want[r * N + n]! ** 2;
      md = Math.max(md, Math.abs(got[r * N + n]! - want[r * N + n]!));
    }
    const rms = Math.sqrt(ss / N) || 1;
    const ratio = md / rms;
    if (!(ratio <= tol)) assert.fail(`${what}: row ${r}: max |diff| ${md} > ${tol} · rms ${rms}`);
    worst = Math.max(worst, ratio);
  }
  return worst;
}

test("fp16 GEMM (every kernel on this device) vs float64: odd shapes, batches, 8-aligned, every epilogue", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.gpu.features.shaderF16) return t.skip("no shader-f16");
  const tc = !!ctx.f16?.syntax;
  // batch, M, N, K, B batched, epilogue (bias+gelu / bias+residual / none), tensor-core tile
  const shapes: [number, number, number, number, boolean, string, typeof TC_TILE_LARGE | undefined][] = [
    [1, 7, 5, 3, false, "none", undefined],
    [2, 33, 20, 17, true, "bias+res", undefined],
    [1, 40, 48, 64, false, "bias+gelu", undefined],
    [2, 65, 72, 40, false, "bias+res", undefined],
    // K = 0: bias and residual only (the tensor-core kernel must not load a first tile).
    [1, 7, 16, 0, false, "bias+res", undefined],
  ];
  // Multi-subgroup tiles where the compiler takes per-subgroup fragment offsets, else the one-subgroup tile.
  const multi = ctx.f16?.multiSubgroup === true;
  if (tc)
    shapes.push(
      [1, 130, 264, 72, false, "bias+gelu", multi ? TC_TILE_LARGE : TC_TILE_SOLO],
      [1, 257, 136, 96, false, "bias+res", multi ? TC_TILE_LARGE_W4 : TC_TILE_SOLO],
      [1, 128, 768, 768, false, "bias+res", undefined],
      // Split-K on tensor cores (few 64×64 tiles, K ≥ 512): a ragged last slice, an edge row block, GELU.
      [1, 70, 96, 1000, false, "bias+gelu", undefined],
      [1, 128, 768, 3072, false, "bias+res", undefined],
      // The direct kernel: clamped edge fragments (M = 130, 40, 100), a batched B.
      [1, 130, 256, 80, false, "bias+gelu", multi ? TC_TILE_DIRECT : TC_TILE_DIRECT_SOLO],
      [2, 40, 48, 64, true, "bias+res", multi ? TC_TILE_DIRECT : TC_TILE_DIRECT_SOLO],
      [1, 100, 768, 768, false, "bias+res", multi ? TC_TILE_DIRECT : TC_TILE_DIRECT_SOLO],
      // Two register stages of prefetch: many K steps, two (K = 40), one (K = 16).
      [1, 130, 264, 200, false, "bias+gelu", { ...(multi ? TC_TILE_LARGE : TC_TILE_SOLO), deep: true }],
      [2, 70, 96, 40, true, "bias+res", { ...(multi ? TC_TILE_LARGE : TC_TILE_SOLO), deep: true }],
      [1, 33, 64, 16, false, "none", { ...(multi ? TC_TILE_LARGE : TC_TILE_SOLO), deep: true }],
      // One workgroup buffer, 64-deep steps (the large-grid default): a partial last step, a batched B, one step.
      [1, 130, 264, 200, false, "bias+gelu", multi ? TC_TILE_LARGE_K64 : { ...TC_TILE_SOLO, single: true }],
      [2, 70, 96, 40, true, "bias+res", multi ? TC_TILE_LARGE_K64 : { ...TC_TILE_SOLO, single: true }],
      [1, 33, 64, 64, false, "none", multi ? TC_TILE_LARGE_K64 : { ...TC_TILE_SOLO, single: true }],
      // 128×192 (one N = 768 wave at 4096 tokens): a partial second column of tiles (N = 200), edge rows.
      [1, 130, 200, 72, false, "bias+res", multi ? TC_TILE_WIDE : { ...TC_TILE_SOLO, single: true }],
      [1, 40, 392, 96, false, "bias+gelu", multi ? TC_TILE_WIDE : { ...TC_TILE_SOLO, single: true }],
      // 128×256 (grids of ≥ 3.5 waves): a partial second column (N = 264), edge rows, a batched B, one step.
      [1, 130, 264, 72, false, "bias+gelu", multi ? TC_TILE_HUGE : { ...TC_TILE_SOLO, single: true }],
      [2, 40, 96, 32, true, "bias+res", multi ? TC_TILE_HUGE : { ...TC_TILE_SOLO, single: true }],
      // 128×192 as twelve subgroups, 48-deep: a partial last step (K = 100), a partial column of tiles (N = 200),
      // edge rows, a batched B, one step.
      [1, 130, 200, 100, false, "bias+gelu", multi ? TC_TILE_WIDE12 : { ...TC_TILE_SOLO, single: true }],
      [2, 70, 392, 48, true, "bias+res", multi ? TC_TILE_WIDE12 : { ...TC_TILE_SOLO, single: true }],
      // Two register stages with one buffer (twelve subgroups' 48-deep steps; the one-subgroup tile's are 32
      // deep): K = 100 and 200 (3 and 5 steps; 4 and 7), 96 (2; 3) and 48 (1; 2).
      [
        1,
        130,
        200,
        100,
        false,
        "bias+gelu",
        { ...(multi ? TC_TILE_WIDE12 : TC_TILE_SOLO), single: true, deep: true },
      ],
      [
        1,
        70,
        392,
        200,
        false,
        "bias+res",
        { ...(multi ? TC_TILE_WIDE12 : TC_TILE_SOLO), single: true, deep: true },
      ],
      [
        2,
        40,
        200,
        96,
        true,
        "none",
        { ...(multi ? TC_TILE_WIDE12 : TC_TILE_SOLO), single: true, deep: true },
      ],
      [
        1,
        33,
        64,
        48,
        false,
        "bias+res",
        { ...(multi ? TC_TILE_WIDE12 : TC_TILE_SOLO), single: true, deep: true },
      ],
    );
  let seed = 100;
  for (const kernel of kernels(ctx))
    for (const [batch, M, N, K, bB, epi, tile] of shapes) {
      const A = round16(rand(batch * M * K, seed++));
      const B = round16(rand((bB ? batch : 1) * K * N, seed++));
      const bias = round16(rand(N, seed++));
      const R = round16(rand(batch * M * N, seed++));
      const useBias = epi !== "none";
      const g = epi === "bias+gelu";
      const useR = epi === "bias+res";
      const out = empty16(ctx, batch > 1 ? [batch, M, N] : [M, N]);
      const rec = ctx.recorder();
      gemm(ctx, rec, {
        precision: "fp16",
        f16Kernel: kernel,
        tcTile: kernel === "tensor-core" ? tile : undefined,
        a: up16(ctx, A, batch > 1 ? [batch, M, K] : [M, K]),
        b: up16(ctx, B, bB ? [batch, K, N] : [K, N]),
        bias: useBias ? up16(ctx, bias, [N]) : undefined,
        gelu: g,
        residual: useR ? up16(ctx, R, out.dims as number[]) : undefined,
        out,
      });
      await rec.submit();
      const got = await read16(ctx, out);
      const want = gemmRef(A, B, batch, bB, M, N, K, useBias ? bias : undefined, g, useR ? R : undefined);
      const what = `${kernel} [${batch}x${M}x${N}x${K}] ${epi}${tile ? ` tile ${tile.BM}x${tile.BN}/${tile.WM}x${tile.WN}${tile.direct ? " direct" : ""}${tile.deep ? " deep" : ""}${tile.single ? " single" : ""}` : ""}`;
      const worst = assertRows(got, want, batch * M, N, 1e-2, what);
      console.log(`# fp16 gemm ${what}: max |diff| / row rms = ${worst.toExponential(2)}`);
    }
});

/**
 * One fp16 GEMM through gemm() with the tensor-core kernel's WGSL emulated (lavapipe, test/tc-emulation.ts): the
 * emulated pipeline goes into the cache under the key gemm() will ask for (`tile`, the flags its shape and
 * epilogue give), then the result is compared with the float64 reference.
 */
async function emulatedTcGemm(
  ctx: WebGpuContext,
  o: {
    M: number;
    N: number;
    K: number;
    epi: "none" | "bias+res" | "bias+gelu";
    kSlices: number;
    tile: TcTile;
    /** Pass `tile` to gemm() (else gemm() picks it: the one-subgroup tile here). */
    force: boolean;
    source: (t: TcTile, f: TcFlags, syntax: MatrixSyntax, sgBuiltin: boolean, fr: TcFrag) => string;
    seed: number;
    what: string;
    /** The fragment shape (the device's config; withEmulatedTc must pretend the same). */
    frag?: TcFrag;
    /** The load/store spelling the WGSL is written in (withEmulatedTc must pretend the same). */
    syntax?: MatrixSyntax;
  },
): Promise<void> {
  const { M, N, K, epi, kSlices } = o;
  const fr = o.frag ?? FRAG_16;
  const split = kSlices > 1;
  const g = epi === "bias+gelu";
  const useR = epi === "bias+res";
  const flags = tcFlagsFor(N, K, fr, { bias: epi !== "none", gelu: g, residual: useR }, split);
  const syntax = o.syntax ?? "template";
  ctx.pipelines.get(tcGemmKey(syntax, o.tile, flags, false, fr), () =>
    emulateSubgroupMatrices(o.source(o.tile, flags, syntax, false, fr), 32, fr),
  );
  let seed = o.seed;
  const A = round16(rand(M * K, seed++));
  const B = round16(rand(K * N, seed++));
  const bias = round16(rand(N, seed++));
  const R = round16(rand(M * N, seed++));
  const out = empty16(ctx, [M, N]);
  const rec = ctx.recorder();
  gemm(ctx, rec, {
    precision: "fp16",
    f16Kernel: "tensor-core",
    tcTile: o.force ? o.tile : undefined,
    kSlices,
    a: up16(ctx, A, [M, K]),
    b: up16(ctx, B, [K, N]),
    bias: epi !== "none" ? up16(ctx, bias, [N]) : undefined,
    gelu: g,
    residual: useR ? up16(ctx, R, [M, N]) : undefined,
    out,
  });
  await rec.submit();
  const got = await read16(ctx, out);
  const want = gemmRef(A, B, 1, false, M, N, K, epi !== "none" ? bias : undefined, g, useR ? R : undefined);
  assertRows(got, want, M, N, 1e-2, `${o.what} [${M}x${N}x${K}] ${epi}, ${kSlices} K slices`);
}

/**
 * Runs `body` with the context's f16 support pretending to one-subgroup tensor cores with fragments `frag` whose
 * load/store spelling is `syntax`.
 */
async function withEmulatedTc(
  ctx: WebGpuContext,
  body: () => Promise<void>,
  frag: TcFrag = FRAG_16,
  syntax: MatrixSyntax = "template",
): Promise<void> {
  const saved = ctx.f16!;
  // The emulation needs lanes from local_invocation_index (sgBuiltin false) and uniform fragment offsets.
  const config = { componentType: "f16", resultComponentType: "f32", ...frag };
  ctx.f16 = { ...saved, config, syntax, multiSubgroup: false, sgBuiltin: false };
  try {
    await body();
  } finally {
    ctx.f16 = saved;
  }
}

/** A lavapipe test of an emulated tensor-core GEMM kernel over `shapes` [M, N, K, epilogue, K slices]. */
function emulatedTcGemmTest(
  name: string,
  o: Pick<Parameters<typeof emulatedTcGemm>[1], "tile" | "force" | "source" | "what" | "frag" | "syntax"> & {
    seed: number;
    /** Only with MHAFUSE_TC_EMULATION=1 (variants no session picks: lavapipe compiles each for minutes). */
    full?: boolean;
  },
  shapes: readonly (readonly [number, number, number, "none" | "bias+res" | "bias+gelu", number])[],
): void {
  const skip = o.full && process.env.MHAFUSE_TC_EMULATION !== "1" && "MHAFUSE_TC_EMULATION=1";
  test(name, { skip }, async (t) => {
    const ctx = await f16Context();
    if (typeof ctx === "string") return t.skip(ctx);
    if (!ctx.gpu.features.shaderF16 || !ctx.f16) return t.skip("no shader-f16");
    if (ctx.f16.syntax) return t.skip("real tensor cores here: the fp16 GEMM test runs them");
    await withEmulatedTc(
      ctx,
      async () => {
        for (const [i, [M, N, K, epi, kSlices]] of shapes.entries())
          await emulatedTcGemm(ctx, { ...o, M, N, K, epi, kSlices, seed: o.seed + 4 * i });
      },
      o.frag,
      o.syntax,
    );
  });
}

// Split-K into 3 slices (64, 64, 8 rows of K) with an edge row block, and 2 slices with GELU. Small, 8-aligned
// shapes: lavapipe runs the emulated fragments slowly (~7 min at K ≈ 700) and compiles the emulated
// scalar-load variant for minutes (the H200 test covers that variant). Only the split-K partials kernel is
// emulated (the reduction applies the epilogue).
emulatedTcGemmTest(
  "tensor-core split-K GEMM WGSL, emulated subgroup matrices (lavapipe): partial slices + reduction epilogues",
  { tile: TC_TILE_SOLO, force: false, source: tcGemmSource, seed: 900, what: "emulated tensor-core" },
  [
    [70, 64, 136, "bias+res", 3],
    [40, 72, 96, "bias+gelu", 2],
  ],
);

// One workgroup buffer (TcTile.single), a 32×32 tile of one subgroup with a 16-deep step (small: lavapipe
// compiles the emulated fragments slowly): K = 40 is three steps, the last partial, each stored into the
// buffer the previous step's products read.
emulatedTcGemmTest(
  "single-buffer tensor-core GEMM WGSL, emulated subgroup matrices (lavapipe): K steps through one buffer",
  {
    tile: { BM: 32, BN: 32, BK: 16, WM: 1, WN: 1, single: true },
    force: true,
    source: tcGemmSource,
    seed: 930,
    what: "emulated single-buffer tensor-core",
  },
  [[40, 40, 40, "bias+res", 1]],
);

// The older load/store spelling (precision.ts MatrixSyntax "bool": `subgroupMatrixLoad<T>(&p, offset, colMajor,
// stride)`), which the run-time probe falls back to where the template spelling does not compile: the
// single-buffer tile's loads and stores with their arguments in that order (the attention's emulated test covers
// the column-major flag).
emulatedTcGemmTest(
  'tensor-core GEMM WGSL in the older "bool" subgroupMatrixLoad/Store spelling, emulated (lavapipe)',
  {
    tile: { BM: 32, BN: 32, BK: 16, WM: 1, WN: 1, single: true },
    force: true,
    source: tcGemmSource,
    seed: 940,
    what: "emulated bool-spelling tensor-core",
    syntax: "bool",
  },
  [[40, 40, 40, "bias+gelu", 1]],
);

// Two register stages (TcTile.deep: the K loop unrolled by two, the register sets alternating; no session picks
// it, so only with MHAFUSE_TC_EMULATION=1 here — the fp16 GEMM test above runs it on real tensor cores), with two
// workgroup buffers and with one: K = 88 is six 16-deep steps (three whole unrolled iterations, the last
// step partial), K = 40 three (odd: the second half of the last iteration is skipped), K = 16 one.
for (const single of [false, true])
  emulatedTcGemmTest(
    `two-stage tensor-core GEMM WGSL${single ? ", one buffer" : ""}, emulated (lavapipe): odd, even and one K step`,
    {
      tile: { BM: 32, BN: 32, BK: 16, WM: 1, WN: 1, deep: true, single },
      force: true,
      source: tcGemmSource,
      seed: single ? 1010 : 990,
      what: `emulated two-stage${single ? " single-buffer" : ""} tensor-core`,
      full: true,
    },
    [
      [40, 40, 88, single ? "bias+gelu" : "bias+res", 1],
      [24, 32, 40, "none", 1],
      [16, 16, 16, "bias+res", 1],
    ],
  );

// Apple's 8×8×8 fragments (the staged kernel, scalar loads and stores: a lane holds 2 values of a row): a
// 16×16 tile of one subgroup is 2×2 fragments, a K step of 16 two fragment steps (small: lavapipe compiles
// emulated fragments slowly). Double buffer with edge rows and columns (M = 20, N = 24) and a partial last K
// step (K = 40); one buffer; split-K partials.
emulatedTcGemmTest(
  "tensor-core GEMM WGSL with 8×8×8 fragments (Apple's config), emulated (lavapipe): both loops, split-K, edges",
  {
    tile: { BM: 16, BN: 16, BK: 16, WM: 1, WN: 1 },
    force: true,
    source: tcGemmSource,
    seed: 970,
    what: "emulated 8×8×8 tensor-core",
    frag: { M: 8, N: 8, K: 8 },
  },
  [
    [20, 24, 40, "bias+gelu", 1],
    [24, 16, 72, "bias+res", 2],
  ],
);

// Intel's 8×16×16 fragments on 16-wide subgroups (precision.ts configLanes): a 16×32 tile of one subgroup is
// 2×2 fragments of 8×16, each lane writing 8 values of a row in the epilogue (vec4 where rows allow it, scalar
// at N = 33); split-K partials. Emulated only: no such device here.
emulatedTcGemmTest(
  "tensor-core GEMM WGSL with 8×16×16 fragments on 16-wide subgroups (Intel's config), emulated (lavapipe)",
  {
    tile: { BM: 16, BN: 32, BK: 16, WM: 1, WN: 1 },
    force: true,
    source: tcGemmSource,
    seed: 980,
    what: "emulated 8×16×16 tensor-core",
    frag: { M: 8, N: 16, K: 16, lanes: 16 },
  },
  [
    [20, 40, 40, "bias+gelu", 1],
    [17, 33, 24, "bias+res", 1],
    [24, 32, 72, "bias+res", 2],
  ],
);

// The direct kernel, one subgroup of 2×2 fragments (32×32): M = 40 clamps the last row fragment to rows
// 24..39 (rows 24..31 are the previous fragment's), N = 48 clamps the second tile's second column fragment
// onto its first.
emulatedTcGemmTest(
  "direct tensor-core GEMM WGSL, emulated subgroup matrices (lavapipe): edge fragments, epilogues, split-K",
  {
    tile: { BM: 32, BN: 32, BK: 16, WM: 1, WN: 1, direct: true },
    force: true,
    source: tcGemmDirectSource,
    seed: 950,
    what: "emulated direct tensor-core",
  },
  [
    [40, 48, 48, "bias+gelu", 1],
    [40, 32, 64, "bias+res", 2],
    [16, 16, 16, "none", 1],
  ],
);

test("tcTileFor: the tile by tile count on an H200, stepping down to what fits the device's workgroup memory", () => {
  const at = (M: number, N: number, limit = 49152, multiSubgroup = true, split = false, invocations = 1024) =>
    tcTileFor({ M, N, nBatch: 1, split, multiSubgroup, limit, invocations });
  // BERT [32,128]: QKV (384 tiles of 128×192) and the N = 768 layers (128) as twelve subgroups of 64×32.
  assert.equal(at(4096, 2304), TC_TILE_WIDE12);
  assert.equal(at(4096, 768), TC_TILE_WIDE12);
  // 4096³ and FFN1 at 4096 tokens (512 and 384 tiles of 128×256): 128×256.
  assert.equal(at(4096, 4096), TC_TILE_HUGE);
  assert.equal(at(4096, 3072), TC_TILE_HUGE);
  // WebGPU's default 256 invocations: not the 512 of 128×256, the next tile down; not the 384 of the twelve
  // subgroups either: what the grid took before them (64-deep 128×128 from 396 tiles of it, one wave of 128×192).
  assert.equal(at(4096, 4096, 49152, true, false, 256), TC_TILE_LARGE);
  assert.equal(at(4096, 2304, 49152, true, false, 256), TC_TILE_LARGE_K64);
  assert.equal(at(4096, 768, 49152, true, false, 256), TC_TILE_WIDE);
  // 1024 tokens: QKV (96 tiles of 128×192) twelve subgroups; 48 tiles, 64×64; split-K, 64×64; one subgroup, SOLO.
  assert.equal(at(1024, 2304), TC_TILE_WIDE12);
  assert.equal(at(1024, 768), TC_TILE_SMALL);
  assert.equal(at(4096, 2304, 49152, true, true), TC_TILE_SMALL);
  assert.equal(at(4096, 2304, 49152, false), TC_TILE_SOLO);
  // 32 KiB of workgroup memory: 128×192 (31 KiB) where 64-deep and 128×128 do not fit, then 64×64.
  assert.equal(at(4096, 2304, 32768), TC_TILE_WIDE);
  assert.equal(at(1024, 2304, 24000), TC_TILE_SMALL);
  // Nothing fits 16 KiB: the tile by count comes back, and recordTcGemm's OpError names its bytes.
  assert.equal(at(1024, 2304, 16384), TC_TILE_WIDE12);
  assert.equal(at(1024, 768, 16384), TC_TILE_SMALL);
  // 128×256 (35 KiB) does not fit 32 KiB, nor 128×128 double-buffered: 128×192.
  assert.equal(at(4096, 4096, 32768), TC_TILE_WIDE);
  for (const t of [
    TC_TILE_HUGE,
    TC_TILE_WIDE12,
    TC_TILE_LARGE_K64,
    TC_TILE_LARGE,
    TC_TILE_WIDE,
    TC_TILE_SMALL,
    TC_TILE_SOLO,
  ])
    assert.ok(tcSharedBytes(t) <= 49152, `${t.BM}x${t.BN}x${t.BK} fits 48 KiB`);
});

test("fp16 GEMM errors name the kernel: tensor cores forced where there are none", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.gpu.features.shaderF16 || ctx.f16?.syntax) return t.skip("needs f16 without tensor cores");
  const a = empty16(ctx, [4, 4]);
  assert.throws(
    () => gemm(ctx, ctx.recorder(), { precision: "fp16", f16Kernel: "tensor-core", a, b: a, out: a }),
    (e: unknown) => e instanceof OpError && /webgpu\.MatMul \(fp16\).*no tensor cores/.test(e.message),
  );
});

/** float64 attention over rows of a packed [S, B, 3E] (or var-seqlen [T, 3E]) tensor. */
function attentionRef(
  qkv: Float32Array,
  B: number,
  N: number,
  H: number,
  rows: (b: number) => [number, number, number],
  idx: (b: number, tok: number) => number,
  out: Float64Array,
  outIdx: (b: number, tok: number) => number,
  causal = false,
  /** Additive score bias of (batch, head, row, key), after the scale. */
  bias?: (b: number, n: number, i: number, j: number) => number,
) {
  const E = N * H;
  for (let b = 0; b < B; b++) {
    const [S, keyLen, start] = rows(b);
    for (let n = 0; n < N; n++)
      for (let i = 0; i < S; i++) {
        const end = causal ? Math.min(keyLen, i + 1) : keyLen;
        const s: number[] = [];
        const qo = idx(b, start + i) + n * 3 * H;
        for (let j = 0; j < end; j++) {
          const ko = idx(b, start + j) + n * 3 * H + H;
          let x = 0;
          for (let h = 0; h < H; h++) x += qkv[qo + h]! * qkv[ko + h]!;
          s.push(x / Math.sqrt(H) + (bias ? bias(b, n, i, j) : 0));
        }
        const m = Math.max(...s);
        let sum = 0;
        const acc = new Float64Array(H);
        s.forEach((x, j) => {
          const e = Math.exp(x - m);
          sum += e;
          const vo = idx(b, start + j) + n * 3 * H + 2 * H;
          for (let h = 0; h < H; h++) acc[h] += e * qkv[vo + h]!;
        });
        const oo = outIdx(b, start + i) + n * H;
        for (let h = 0; h < H; h++) out[oo + h] = sum === 0 ? 0 : acc[h]! / sum;
      }
  }
  void E;
}

function maxDiff(got: Float32Array, want: Float64Array): number {
  let d = 0;
  for (let i = 0; i < want.length; i++) {
    const x = Math.abs(got[i]! - want[i]!);
    if (!(x <= d)) d = Number.isNaN(x) ? Number.POSITIVE_INFINITY : Math.max(d, x);
  }
  return d;
}

/** float64 reference of the packed op ([S, B, 3E] TensorRT layout, per-sequence key and query lengths). */
function packedRef(
  qkv: Float32Array,
  S: number,
  B: number,
  N: number,
  H: number,
  lengths: number[],
): Float64Array {
  const E = N * H;
  const want = new Float64Array(S * B * E);
  attentionRef(
    qkv,
    B,
    N,
    H,
    (b) => [S, lengths[b]!, 0],
    (b, tok) => (tok * B + b) * 3 * E,
    want,
    (b, tok) => (tok * B + b) * E,
  );
  return want;
}

/** The fp16 packed-QKV op on `qkv` [S, B, 3E] (f16-exact values) with key lengths, read back as numbers. */
async function packedF16(
  ctx: WebGpuContext,
  qkv: Float32Array,
  dims: { S: number; B: number; N: number; H: number },
  lengths: number[],
  kernel: F16Kernel,
  tcVariant?: TcAttentionVariant,
): Promise<Float32Array> {
  const { S, B, N, H } = dims;
  const out = empty16(ctx, [S, B, N * H]);
  const rec = ctx.recorder();
  packedQkvAttention(ctx, rec, {
    qkv: up16(ctx, qkv, [S, B, 3 * N * H]),
    numHeads: N,
    lengths: ctx.pool.upload(Int32Array.from(lengths)),
    out,
    precision: "fp16",
    f16Kernel: kernel,
    tcVariant,
  });
  await rec.submit();
  return read16(ctx, out);
}

test("fp16 packed-QKV attention (lengths) vs float64, ≤ 2e-3 for unit-scale inputs", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.gpu.features.shaderF16) return t.skip("no shader-f16");
  const cases: [number, number, number, number, number[]][] = [
    // S, B, N, H, lengths
    [70, 3, 2, 64, [70, 33, 0]],
    [40, 2, 3, 32, [1, 40]],
  ];
  if (ctx.f16?.syntax)
    cases.push(
      [200, 2, 4, 64, [200, 129]],
      [128, 4, 2, 16, [128, 128, 65, 64]],
      // Heads over 64 (the lazy kernel's output in column chunks): 128 (two of 64), 96 (two of 48), 80 (five of 16).
      [150, 2, 2, 128, [150, 77]],
      [100, 2, 2, 96, [100, 40]],
      [70, 2, 1, 80, [70, 9]],
    );
  let seed = 300;
  for (const kernel of attentionKernels(ctx))
    for (const [S, B, N, H, lengths] of cases) {
      const E = N * H;
      const qkv = round16(rand(S * B * 3 * E, seed++));
      const got = await packedF16(ctx, qkv, { S, B, N, H }, lengths, kernel);
      const want = packedRef(qkv, S, B, N, H, lengths);
      const d = maxDiff(got, want);
      console.log(
        `# fp16 attention ${kernel} packed S=${S} B=${B} N=${N} H=${H}: max |diff| ${d.toExponential(2)}`,
      );
      assert.ok(d <= 2e-3, `${kernel} S=${S} H=${H}: max |diff| ${d}`);
    }
});

test("fp16 packed attention with row maxima growing along the keys (online / lazy rescale) vs float64", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.gpu.features.shaderF16) return t.skip("no shader-f16");
  const [S, B, N, H] = [300, 2, 2, 64];
  const lengths = [300, 170];
  const E = N * H;
  // K at token s scaled by 1 + s/16: scores reach ±20 and each row's maximum passes LAZY_TAU several times.
  const raw = rand(S * B * 3 * E, 350);
  for (let tok = 0; tok < S * B; tok++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++) raw[tok * 3 * E + n * 3 * H + H + h]! *= 1 + Math.floor(tok / B) / 16;
  const qkv = round16(raw);
  const want = packedRef(qkv, S, B, N, H, lengths);
  // The tensor-core kernel's default (lazy rescale) and its eager variant where the device has tensor cores.
  const runs: [F16Kernel, TcAttentionVariant | undefined][] = attentionKernels(ctx).flatMap((k) =>
    k === "tensor-core"
      ? ([
          [k, undefined],
          [k, { lazy: false }],
        ] as [F16Kernel, TcAttentionVariant | undefined][])
      : [[k, undefined] as [F16Kernel, undefined]],
  );
  for (const [kernel, tcVariant] of runs) {
    const d = maxDiff(await packedF16(ctx, qkv, { S, B, N, H }, lengths, kernel, tcVariant), want);
    const name = `${kernel}${tcVariant?.lazy === false ? " eager" : ""}`;
    console.log(`# fp16 attention ${name} growing keys: max |diff| ${d.toExponential(2)}`);
    assert.ok(d <= 2e-3, `${name} growing keys: max |diff| ${d}`);
  }
});

test("fp16 packed attention: the session's tensor-core preference falls back to SIMT where it does not apply (H = 72)", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.gpu.features.shaderF16) return t.skip("no shader-f16");
  // H = 72: no tensor-core attention plan (multiples of 16 up to 128); on a device without tensor cores nothing is.
  const [S, B, N, H] = [20, 2, 2, 72];
  const E = N * H;
  const lengths = [20, 7];
  const qkv = round16(rand(S * B * 3 * E, 777));
  const run = (preferred: boolean) => {
    const out = empty16(ctx, [S, B, E]);
    const rec = ctx.recorder();
    packedQkvAttention(ctx, rec, {
      qkv: up16(ctx, qkv, [S, B, 3 * E]),
      numHeads: N,
      lengths: ctx.pool.upload(Int32Array.from(lengths)),
      out,
      precision: "fp16",
      f16Kernel: "tensor-core",
      f16KernelPreferred: preferred,
    });
    return { rec, out };
  };
  assert.throws(
    () => run(false),
    (e: unknown) => e instanceof OpError && /tensor-core|tensor cores/.test(e.message),
  );
  const { rec, out } = run(true);
  await rec.submit();
  const want = packedRef(qkv, S, B, N, H, lengths);
  const d = maxDiff(await read16(ctx, out), want);
  assert.ok(d <= 2e-3, `preferred tensor-core at H = 72: max |diff| ${d}`);
});

test("fp16 var-seqlen attention (cu_seqlens) and the general op (causal, bias, growing maxima, GQA, Sq ≠ Skv) vs float64", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.gpu.features.shaderF16) return t.skip("no shader-f16");
  const N = 2;
  const H = 64;
  const E = N * H;
  const lens = [37, 0, 90, 5];
  const cu = [0];
  for (const l of lens) cu.push(cu.at(-1)! + l);
  const T = cu.at(-1)!;
  const qkv = round16(rand(T * 3 * E, 400));
  const want = new Float64Array(T * E);
  attentionRef(
    qkv,
    lens.length,
    N,
    H,
    (b) => [lens[b]!, lens[b]!, cu[b]!],
    (_b, tok) => tok * 3 * E,
    want,
    (_b, tok) => tok * E,
  );
  for (const kernel of attentionKernels(ctx)) {
    const out = empty16(ctx, [T, E]);
    const rec = ctx.recorder();
    varSeqlenQkvAttention(ctx, rec, {
      qkv: up16(ctx, qkv, [T, 3 * E]),
      numHeads: N,
      cuSeqlens: ctx.pool.upload(Int32Array.from(cu)),
      batch: lens.length,
      maxSeqlen: 90,
      out,
      precision: "fp16",
      f16Kernel: kernel,
    });
    await rec.submit();
    const d = maxDiff(await read16(ctx, out), want);
    console.log(`# fp16 attention ${kernel} var-seqlen: max |diff| ${d.toExponential(2)}`);
    assert.ok(d <= 2e-3, `${kernel} var-seqlen: max |diff| ${d}`);
  }
  // General op, BSNH, causal, an additive bias broadcast over heads: every attention kernel of the device. K at
  // token s scaled by 1 + s/8, so rows' maxima grow across key tiles (the tensor-core kernel's lazy rescale).
  const B = 2;
  const S = 100;
  const q = round16(rand(B * S * E, 401));
  const k = round16(rand(B * S * E, 402).map((x, e) => x * (1 + (Math.floor(e / E) % S) / 8)));
  const v = round16(rand(B * S * E, 403));
  const packed = new Float32Array(B * S * 3 * E);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let n = 0; n < N; n++)
        for (let h = 0; h < H; h++) {
          const src = ((b * S + s) * N + n) * H + h;
          const dst = (s * B + b) * 3 * E + n * 3 * H + h;
          packed[dst] = q[src]!;
          packed[dst + H] = k[src]!;
          packed[dst + 2 * H] = v[src]!;
        }
  // [B, 1, S, S]: every fifth score masked the way models do (−10000), the rest small; in batch 0 row 3 every
  // key (a softmax over −10000 + score) and row 70 its first 64 keys (a first key tile with its maximum near
  // −10000, then a rescale by exp(−10000 − max) = 0).
  const bias = rand(B * S * S, 404);
  for (let i = 0; i < bias.length; i += 5) bias[i] = -10000;
  for (let j = 0; j < S; j++) {
    bias[3 * S + j] = -10000;
    if (j < 64) bias[70 * S + j] = -10000;
  }
  const ref = new Float64Array(S * B * E);
  attentionRef(
    packed,
    B,
    N,
    H,
    () => [S, S, 0],
    (b, tok) => (tok * B + b) * 3 * E,
    ref,
    (b, tok) => (tok * B + b) * E,
    true,
    (b, _n, i, j) => bias[(b * S + i) * S + j]!,
  );
  const want2 = new Float64Array(B * S * E);
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let e = 0; e < E; e++) want2[(b * S + s) * E + e] = ref[(s * B + b) * E + e]!;
  for (const kernel of attentionKernels(ctx)) {
    const out = empty16(ctx, [B, S, N, H]);
    const rec = ctx.recorder();
    generalAttention(ctx, rec, {
      q: up16(ctx, q, [B, S, N, H]),
      k: up16(ctx, k, [B, S, N, H]),
      v: up16(ctx, v, [B, S, N, H]),
      layout: "BSNH",
      out,
      causalOffset: 0,
      bias: { buffer: ctx.pool.upload(bias), dims: [B, 1, S, S] },
      precision: "fp16",
      f16Kernel: kernel,
    });
    await rec.submit();
    const d = maxDiff(await read16(ctx, out), want2);
    console.log(`# fp16 attention general causal + bias (${kernel}): max |diff| ${d.toExponential(2)}`);
    assert.ok(d <= 2e-3, `${kernel} general causal + bias: max |diff| ${d}`);
  }
  // GQA (4 query heads on 2 key/value heads) with Sq ≠ Skv: 37 new tokens after 113 cached ones (causal offset
  // 113), BSNH, as a decoder's prefill with a past runs; and the same without the causal mask (cross-attention).
  const [Sq, Skv, Nq, Nkv] = [37, 150, 4, 2];
  const gq = round16(rand(B * Sq * Nq * H, 405));
  const gk = round16(rand(B * Skv * Nkv * H, 406));
  const gv = round16(rand(B * Skv * Nkv * H, 407));
  for (const causal of [true, false]) {
    const off = Skv - Sq;
    const wantG = new Float64Array(B * Sq * Nq * H);
    for (let b = 0; b < B; b++)
      for (let n = 0; n < Nq; n++) {
        const kn = Math.floor(n / (Nq / Nkv));
        for (let i = 0; i < Sq; i++) {
          const keys = causal ? i + off + 1 : Skv;
          const sc = new Float64Array(keys);
          let m = -Infinity;
          for (let j = 0; j < keys; j++) {
            let dot = 0;
            for (let h = 0; h < H; h++)
              dot += gq[((b * Sq + i) * Nq + n) * H + h]! * gk[((b * Skv + j) * Nkv + kn) * H + h]!;
            sc[j] = dot / Math.sqrt(H);
            m = Math.max(m, sc[j]!);
          }
          let sum = 0;
          for (let j = 0; j < keys; j++) sum += sc[j] = Math.exp(sc[j]! - m);
          for (let h = 0; h < H; h++) {
            let acc = 0;
            for (let j = 0; j < keys; j++) acc += sc[j]! * gv[((b * Skv + j) * Nkv + kn) * H + h]!;
            wantG[((b * Sq + i) * Nq + n) * H + h] = acc / sum;
          }
        }
      }
    for (const kernel of attentionKernels(ctx)) {
      const out = empty16(ctx, [B, Sq, Nq, H]);
      const rec = ctx.recorder();
      generalAttention(ctx, rec, {
        q: up16(ctx, gq, [B, Sq, Nq, H]),
        k: up16(ctx, gk, [B, Skv, Nkv, H]),
        v: up16(ctx, gv, [B, Skv, Nkv, H]),
        layout: "BSNH",
        out,
        causalOffset: causal ? off : undefined,
        precision: "fp16",
        f16Kernel: kernel,
      });
      await rec.submit();
      const d = maxDiff(await read16(ctx, out), wantG);
      const what = `GQA ${Nq}/${Nkv}, Sq ${Sq} ≠ Skv ${Skv}${causal ? `, causal offset ${off}` : ""} (${kernel})`;
      console.log(`# fp16 attention general ${what}: max |diff| ${d.toExponential(2)}`);
      assert.ok(d <= 2e-3, `${what}: max |diff| ${d}`);
    }
  }
});

test("f32 ↔ f16 casts on the GPU match the host conversion (odd count)", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  const x = rand(1001, 7, 100);
  const src: GpuTensor = { buffer: ctx.pool.upload(x), dims: [1001] };
  const half = empty16(ctx, [1001]);
  const back: GpuTensor = { buffer: ctx.pool.acquire(1001 * 4), dims: [1001] };
  const rec = ctx.recorder();
  castF32ToF16(ctx, rec, src, half);
  castF16ToF32(ctx, rec, half, back);
  await rec.submit();
  const h = await read16(ctx, half);
  const b = await ctx.pool.readFloat32(back.buffer, 1001);
  const want = round16(x);
  // pack2x16float may truncate instead of rounding: within one f16 ulp of the host's round-to-nearest.
  for (let i = 0; i < 1001; i++) {
    assert.ok(
      Math.abs(h[i]! - want[i]!) <= Math.abs(want[i]!) * 2 ** -10,
      `cast ${i}: ${h[i]} vs ${want[i]}`,
    );
    assert.equal(b[i], h[i]);
  }
  assert.ok(new MhafuseError("x") instanceof Error);
});
