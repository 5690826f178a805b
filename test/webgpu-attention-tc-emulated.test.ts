/**
 * The tensor-core attention's WGSL (attention-tc.ts) run on lavapipe through an emulation of the subgroup
 * matrices (test/tc-emulation.ts): checks the kernel's index arithmetic — staging, fragment offsets and
 * strides, the lane → (row, side) mapping, the online softmax, the output packing — through the real dispatch
 * (packedQkvAttention / varSeqlenQkvAttention, uniforms and all) against the SIMT fp16 kernel. The emulated
 * pipeline is put in the context's pipeline cache under the key flashAttention asks for. Only kernels that take
 * the subgroup and lane from local_invocation_index run here (sgBuiltin false). Also checks what the probe
 * kernel's debug dumps (TcAttentionConfig.debug) hold, so bench/tc-attention-probe.ts decodes them right.
 * lavapipe runs the emulation slowly (compiling each kernel takes it a minute or two where Mesa's shader cache
 * is cold): by default only H = 16 runs (one and four subgroups, and var-seqlen with one);
 * MHAFUSE_TC_EMULATION=1 runs everything. lavapipe's
 * 32 KiB of workgroup memory (less the emulation's shuffle scratch) leaves out the four-subgroup kernel with
 * 64-key tiles at H > 32; its 32-key tiles (TcAttentionVariant.keyTile) cover H = 48 and 64 with four
 * subgroups.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import {
  type FlashAttentionArgs,
  flashAttention,
  packedQkvAttention,
  varSeqlenQkvAttention,
} from "../src/backends/webgpu/kernels/attention.js";
import {
  singleHeadTcUniforms,
  TC_ATTENTION_FIELDS,
  TC_DEBUG_LAYOUT,
  type TcAttentionConfig,
  type TcAttentionVariant,
  tcAttentionChoiceFor,
  tcAttentionKey,
  tcAttentionPlan,
  tcAttentionSource,
} from "../src/backends/webgpu/kernels/attention-tc.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { type F16Kernel, fromF16, type MatrixSyntax, toF16 } from "../src/backends/webgpu/precision.js";
import { emulateSubgroupMatrices } from "./tc-emulation.js";
import { rand, webgpuUnavailable } from "./webgpu-helpers.js";

let ctxPromise: Promise<WebGpuContext | string> | undefined;
function context(): Promise<WebGpuContext | string> {
  // Where the device has real subgroup matrices the kernels themselves run against float64
  // (test/webgpu-attention*.test.ts, test/webgpu-f16*.test.ts): the emulation (private arrays per fragment)
  // is for lavapipe, and NVIDIA's compiler rejects its local memory at H = 96.
  ctxPromise ??= WebGpuContext.create({ unsafeF16: true }).then(
    (ctx) => {
      const skip = !ctx.gpu.features.shaderF16
        ? "no shader-f16"
        : ctx.f16?.syntax
          ? "real tensor cores here: the emulation is for devices without them"
          : undefined;
      if (skip) ctx.dispose();
      return skip ?? ctx;
    },
    (e: unknown) => {
      const reason = webgpuUnavailable(e);
      if (reason !== undefined) return reason;
      throw e;
    },
  );
  return ctxPromise;
}
after(async () => {
  const c = await ctxPromise;
  if (c instanceof WebGpuContext) c.dispose();
});

/**
 * Makes flashAttention take the (emulated) tensor-core kernel: a fake detection and a pre-filled cache (under
 * the key flashAttention asks for; were it another, it would compile the real WGSL, which lavapipe rejects).
 */
function useEmulated(
  ctx: WebGpuContext,
  c: Omit<TcAttentionConfig, "sgBuiltin">,
  syntax: MatrixSyntax = "template",
): void {
  const real = ctx.f16!;
  // The device as tensor cores with NVIDIA's 16×16×16 config (the kernel's fragments) would be.
  const config = { componentType: "f16", resultComponentType: "f32", M: 16, N: 16, K: 16 };
  ctx.f16 = { ...real, config, syntax, multiSubgroup: c.multi, sgBuiltin: false };
  const cfg = { ...c, sgBuiltin: false };
  ctx.pipelines.get(tcAttentionKey(syntax, cfg), () =>
    emulateSubgroupMatrices(tcAttentionSource(cfg, syntax), c.multi ? 128 : 32),
  );
}

/** Whether flashAttention runs this variant here as asked (subgroups) and its emulation (+ shuffle scratch) fits. */
function emulable(ctx: WebGpuContext, multi: boolean, H: number, v: TcAttentionVariant): boolean {
  const limit = ctx.gpu.limits.maxComputeWorkgroupStorageSize;
  const p = tcAttentionPlan(H, H, limit, multi, { ...v, multi });
  return p !== undefined && p.multi === multi && p.bytes + 4 * (multi ? 128 : 32) <= limit;
}

/** A variant's name in the messages. */
const label = (multi: boolean, v: TcAttentionVariant) =>
  `${multi ? "4sg" : "1sg"}${v.keyTile ? ` kt${v.keyTile}` : ""}${v.pInK === false ? " P-separate" : ""}${v.lazy === false ? " eager" : ""}`;

async function packed(
  ctx: WebGpuContext,
  kernel: F16Kernel,
  S: number,
  B: number,
  N: number,
  H: number,
  lengths?: number[],
  tcVariant?: TcAttentionVariant & { multi: boolean },
  /** K at token s scaled by 1 + s/4: each row's maximum grows along the keys (the lazy rescale's path). */
  growKeys = false,
) {
  const E = N * H;
  const qkv = rand(S * B * 3 * E, S * 7 + B + N + H);
  if (growKeys)
    for (let t = 0; t < S * B; t++)
      for (let n = 0; n < N; n++)
        for (let h = 0; h < H; h++) qkv[t * 3 * E + n * 3 * H + H + h]! *= 1 + Math.floor(t / B) / 4;
  const out: GpuTensor = { buffer: ctx.pool.acquire(2 * S * B * E + 4), dims: [S, B, E] };
  const rec = ctx.recorder();
  packedQkvAttention(ctx, rec, {
    qkv: { buffer: ctx.pool.upload(toF16(qkv)), dims: [S, B, 3 * E] },
    numHeads: N,
    lengths: lengths ? ctx.pool.upload(Int32Array.from(lengths)) : undefined,
    out,
    precision: "fp16",
    f16Kernel: kernel,
    tcVariant,
  });
  await rec.submit();
  return fromF16(new Uint16Array(await ctx.pool.readback(out.buffer, 2 * S * B * E)), S * B * E);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const full = process.env.MHAFUSE_TC_EMULATION === "1";
type Shape = [
  multi: boolean,
  variant: TcAttentionVariant,
  S: number,
  B: number,
  N: number,
  H: number,
  lengths?: number[],
  growKeys?: boolean,
];
// Lengths of 0 (the workgroup loops over no key tile: zero rows) and partial tiles; S past a tile boundary.
const shapes: Shape[] = [
  // The eager rescale (TcAttentionVariant.lazy false); the other cases take the default, lazy.
  [false, { lazy: false }, 16, 1, 1, 16],
  // The default layout (Q staging and P in the K tile's memory) with four subgroups and 64-key tiles (more
  // than TC_SHORT_KEYS keys): three row tiles and three key tiles, the last of each partial; a full, an empty
  // and a partial sequence.
  [true, {}, 136, 3, 1, 16, [136, 0, 17]],
  // The lazy rescale with maxima that grow along the keys: rows rescale on some tiles and not on others; a
  // partial last tile, an empty and a short sequence.
  [false, {}, 100, 3, 1, 16, [100, 0, 40], true],
  // A head over 64: O through the scratch in two chunks of 48 columns (rescales and the final store); 128 needs
  // more workgroup memory than lavapipe's SIMT reference kernel has (the H200 test checks it against float64).
  [false, {}, 70, 2, 1, 96, [70, 37], true],
  ...(full
    ? ([
        [false, {}, 33, 1, 1, 32],
        [false, {}, 40, 2, 2, 16, [40, 3]],
        [false, {}, 50, 2, 1, 64, [50, 0]],
        [false, { pInK: false }, 50, 2, 1, 64, [50, 31]],
        [true, {}, 70, 2, 2, 32, [70, 0]],
        [true, { pInK: false }, 80, 2, 1, 16, [80, 17]],
        // The four-subgroup kernel at H = 64 (32-key tiles: 64-key ones need more than lavapipe's 32 KiB), and
        // 48 and 16, whose K/V tile loads leave part of the threads idle.
        [true, { keyTile: 32, pInK: false }, 100, 3, 2, 64, [100, 0, 37]],
        [true, { keyTile: 32 }, 70, 2, 1, 64, [70, 33]],
        [true, { keyTile: 32 }, 100, 2, 1, 64, [100, 37], true],
        [true, {}, 150, 2, 2, 32, [150, 70], true],
        [true, { lazy: false }, 136, 3, 1, 16, [136, 0, 17], true],
        // H = 96 with four subgroups; H = 80: five chunks of 16 columns.
        [true, { keyTile: 32 }, 70, 2, 1, 96, [70, 33], true],
        [false, {}, 50, 2, 1, 80, [50, 21], true],
        [true, { keyTile: 32 }, 40, 2, 1, 48, [40, 5]],
        [true, { keyTile: 32, pInK: false }, 40, 2, 1, 16, [40, 0]],
        // Where workgroup memory allows (not lavapipe): the four-subgroup default at H = 64.
        [true, {}, 100, 2, 1, 64, [100, 37]],
        [true, { pInK: false }, 100, 2, 1, 64, [100, 0]],
      ] satisfies Shape[])
    : []),
];

test("tensor-core attention WGSL, emulated subgroup matrices: matches the SIMT fp16 kernel", async (t) => {
  const ctx = await context();
  if (typeof ctx === "string") return t.skip(ctx);
  const saved = ctx.f16;
  try {
    for (const [multi, v, S, B, N, H, lengths, grow] of shapes) {
      const name = `${label(multi, v)} S=${S} B=${B} N=${N} H=${H}${lengths ? ` lengths ${lengths}` : ""}${grow ? " growing keys" : ""}`;
      // The variant flashAttention runs for S keys (a key tile by the length where the case names none).
      const asRun = tcAttentionChoiceFor(S, v, { H, limit: ctx.gpu.limits.maxComputeWorkgroupStorageSize });
      if (!emulable(ctx, multi, H, asRun)) {
        t.diagnostic(`skipped ${name}: workgroup memory ${ctx.gpu.limits.maxComputeWorkgroupStorageSize}`);
        continue;
      }
      const want = await packed(ctx, "simt", S, B, N, H, lengths, undefined, grow);
      useEmulated(ctx, { ...asRun, multi, H, lengths: !!lengths, cu: false });
      const got = await packed(ctx, "tensor-core", S, B, N, H, lengths, { ...v, multi }, grow);
      ctx.f16 = saved;
      const d = maxDiff(got, want);
      t.diagnostic(`${name}: max |tc - simt| ${d.toExponential(2)}`);
      assert.ok(d <= 2e-3, `${name}: max |tc - simt| ${d}`);
    }
  } finally {
    ctx.f16 = saved;
  }
});

// The older subgroupMatrixLoad/Store spelling (precision.ts MatrixSyntax "bool", the run-time probe's second
// choice): Kᵀ fragments loaded column-major through its flag, a lengths mask with a partial sequence.
test('tensor-core attention WGSL in the older "bool" spelling, emulated: matches the SIMT fp16 kernel', async (t) => {
  const ctx = await context();
  if (typeof ctx === "string") return t.skip(ctx);
  const saved = ctx.f16;
  try {
    const [S, B, N, H, lengths] = [40, 2, 1, 16, [40, 23]];
    const asRun = tcAttentionChoiceFor(S, {}, { H, limit: ctx.gpu.limits.maxComputeWorkgroupStorageSize });
    const want = await packed(ctx, "simt", S, B, N, H, lengths);
    useEmulated(ctx, { ...asRun, multi: false, H, lengths: true, cu: false }, "bool");
    const got = await packed(ctx, "tensor-core", S, B, N, H, lengths, { multi: false });
    ctx.f16 = saved;
    const d = maxDiff(got, want);
    t.diagnostic(`bool spelling: max |tc - simt| ${d.toExponential(2)}`);
    assert.ok(d <= 2e-3, `bool spelling: max |tc - simt| ${d}`);
  } finally {
    ctx.f16 = saved;
  }
});

// One subgroup at H = 16 by default (each emulated kernel costs lavapipe a minute or two to compile where
// Mesa's shader cache is cold), more with MHAFUSE_TC_EMULATION=1.
const varShapes: [multi: boolean, variant: TcAttentionVariant, H: number][] = [
  [false, {}, 16],
  ...(full
    ? ([
        [false, {}, 32],
        [true, {}, 16],
        [true, { keyTile: 32, pInK: false }, 64],
        [true, {}, 64],
      ] satisfies [boolean, TcAttentionVariant, number][])
    : []),
];

test("tensor-core attention WGSL, emulated: var-seqlen (cu_seqlens), empty sequences", async (t) => {
  const ctx = await context();
  if (typeof ctx === "string") return t.skip(ctx);
  const saved = ctx.f16;
  const N = 2;
  // An empty sequence in the middle and at the end (it starts at T: nothing of it may be read); 73 tokens
  // span two row tiles of 64 and two key tiles, the second partial.
  const cu = [0, 5, 5, 78, 79, 79];
  const T = cu[cu.length - 1]!;
  const run = async (
    kernel: F16Kernel,
    H: number,
    qkv: Float32Array,
    tcVariant?: FlashAttentionArgs["tcVariant"],
  ) => {
    const E = N * H;
    const out: GpuTensor = { buffer: ctx.pool.acquire(2 * T * E + 4), dims: [T, E] };
    const rec = ctx.recorder();
    varSeqlenQkvAttention(ctx, rec, {
      qkv: { buffer: ctx.pool.upload(toF16(qkv)), dims: [T, 3 * E] },
      cuSeqlens: ctx.pool.upload(Int32Array.from(cu)),
      batch: cu.length - 1,
      maxSeqlen: 73,
      numHeads: N,
      out,
      precision: "fp16",
      f16Kernel: kernel,
      tcVariant,
    });
    await rec.submit();
    return fromF16(new Uint16Array(await ctx.pool.readback(out.buffer, 2 * T * E)), T * E);
  };
  try {
    for (const [multi, v, H] of varShapes) {
      const name = `var-seqlen ${label(multi, v)} H=${H}`;
      // maxSeqlen: the key count flashAttention sees.
      const asRun = tcAttentionChoiceFor(73, v, { H, limit: ctx.gpu.limits.maxComputeWorkgroupStorageSize });
      if (!emulable(ctx, multi, H, asRun)) {
        t.diagnostic(`skipped ${name}: workgroup memory ${ctx.gpu.limits.maxComputeWorkgroupStorageSize}`);
        continue;
      }
      const qkv = rand(T * 3 * N * H, 99 + H);
      const want = await run("simt", H, qkv);
      useEmulated(ctx, { ...asRun, multi, H, lengths: false, cu: true });
      const got = await run("tensor-core", H, qkv, { ...v, multi });
      ctx.f16 = saved;
      const d = maxDiff(got, want);
      t.diagnostic(`${name}: max |tc - simt| ${d.toExponential(2)}`);
      assert.ok(d <= 2e-3, `${name}: max |tc - simt| ${d}`);
    }
  } finally {
    ctx.f16 = saved;
  }
});

/**
 * The general op's problems (../kernels/attention.ts flashAttention with separate strided views): GQA (4 query
 * heads on 2 kv heads), Sq ≠ Skv, key lengths, a causal mask (bottom-right, or per batch from the lengths) and
 * an additive f32 bias broadcast over heads — keys past a length or the causal limit must not read the bias.
 */
interface GeneralCase {
  multi: boolean;
  causal: "none" | "offset" | "perBatch";
  bias: boolean;
  Sq: number;
  Skv: number;
  lengths: number[];
}
const H_GENERAL = 16;
const generalCases: GeneralCase[] = [
  { multi: false, causal: "offset", bias: true, Sq: 20, Skv: 45, lengths: [45, 30] },
  ...(full
    ? ([
        { multi: true, causal: "perBatch", bias: false, Sq: 70, Skv: 100, lengths: [100, 71] },
        { multi: true, causal: "none", bias: true, Sq: 33, Skv: 40, lengths: [40, 0] },
      ] satisfies GeneralCase[])
    : []),
];

async function general(ctx: WebGpuContext, kernel: F16Kernel, c: GeneralCase, multi?: boolean) {
  const B = 2;
  const N = 4;
  const Nkv = 2;
  const H = H_GENERAL;
  const { Sq, Skv } = c;
  // Q as [B, Sq, N·H] (BSNH), K and V as [B, Nkv, Skv, H] (BNSH), O as [B, Sq, N·H].
  const q = rand(B * Sq * N * H, 3 + Sq);
  const k = rand(B * Nkv * Skv * H, 5 + Skv);
  // K at key j scaled by 1 + j/4: each row's maximum grows along the keys, so the lazy rescale runs with the
  // masks and the bias.
  for (let e = 0; e < k.length; e++) k[e]! *= 1 + (Math.floor(e / H) % Skv) / 4;
  const v = rand(B * Nkv * Skv * H, 7 + Skv);
  const bias = rand(B * Sq * Skv, 11);
  // Some keys masked out through the bias as models do (−10000), so the mask path is exercised too; in batch 0,
  // row 3 every key (its softmax is over −10000 + score) and row 12 the first 32 keys (a first key tile that
  // sets its maximum near −10000, then a rescale by exp(−10000 − max) = 0).
  for (let i = 0; i < bias.length; i += 7) bias[i] = -10000;
  for (let j = 0; j < Skv; j++) {
    bias[3 * Skv + j] = -10000;
    if (j < 32 && 12 < Sq) bias[12 * Skv + j] = -10000;
  }
  const bsnh = { offset: 0, batchStride: Sq * N * H, headStride: H, seqStride: N * H };
  const bnsh = { offset: 0, batchStride: Nkv * Skv * H, headStride: Skv * H, seqStride: H };
  const out = ctx.pool.acquire(2 * B * Sq * N * H + 4);
  const rec = ctx.recorder();
  flashAttention(ctx, rec, {
    batch: B,
    numHeads: N,
    kvNumHeads: Nkv,
    seqQ: Sq,
    seqKV: Skv,
    headSize: H,
    vHeadSize: H,
    scale: 0.3,
    q: ctx.pool.upload(toF16(q)),
    qLayout: bsnh,
    k: ctx.pool.upload(toF16(k)),
    kLayout: bnsh,
    v: ctx.pool.upload(toF16(v)),
    vLayout: bnsh,
    out,
    outLayout: bsnh,
    keyLengths: ctx.pool.upload(Int32Array.from(c.lengths)),
    causalOffset: c.causal === "offset" ? Skv - Sq : undefined,
    causalPerBatch: c.causal === "perBatch",
    bias: c.bias
      ? {
          buffer: ctx.pool.upload(bias),
          offset: 0,
          batchStride: Sq * Skv,
          headStride: 0,
          rowStride: Skv,
          keyStride: 1,
        }
      : undefined,
    precision: "fp16",
    f16Kernel: kernel,
    tcVariant: multi === undefined ? undefined : { multi },
  });
  await rec.submit();
  const n = B * Sq * N * H;
  return fromF16(new Uint16Array(await ctx.pool.readback(out, 2 * n)), n);
}

test("tensor-core attention WGSL, emulated: the general op (GQA, Sq ≠ Skv, causal, bias, lengths)", async (t) => {
  const ctx = await context();
  if (typeof ctx === "string") return t.skip(ctx);
  const saved = ctx.f16;
  try {
    for (const c of generalCases) {
      const name = `general ${label(c.multi, {})} causal ${c.causal} bias ${c.bias} Sq=${c.Sq} Skv=${c.Skv} lengths ${c.lengths}`;
      const asRun = tcAttentionChoiceFor(
        c.Skv,
        {},
        { H: H_GENERAL, limit: ctx.gpu.limits.maxComputeWorkgroupStorageSize },
      );
      if (!emulable(ctx, c.multi, H_GENERAL, asRun)) {
        t.diagnostic(`skipped ${name}: workgroup memory ${ctx.gpu.limits.maxComputeWorkgroupStorageSize}`);
        continue;
      }
      const want = await general(ctx, "simt", c);
      useEmulated(ctx, {
        ...asRun,
        multi: c.multi,
        H: H_GENERAL,
        lengths: true,
        cu: false,
        causal: c.causal !== "none",
        causalPerBatch: c.causal === "perBatch",
        bias: c.bias,
      });
      const got = await general(ctx, "tensor-core", c, c.multi);
      ctx.f16 = saved;
      const d = maxDiff(got, want);
      t.diagnostic(`${name}: max |tc - simt| ${d.toExponential(2)}`);
      assert.ok(d <= 2e-3, `${name}: max |tc - simt| ${d}`);
      // Not all zeros: the rows the mask leaves keys to are computed.
      assert.ok(
        got.some((x) => Math.abs(x) > 0.05),
        `${name}: outputs are all near zero`,
      );
    }
  } finally {
    ctx.f16 = saved;
  }
});

test("tensor-core attention probe kernel (debug dumps, old 4-byte kvEnd variable), emulated", {
  skip: !full && "MHAFUSE_TC_EMULATION=1",
}, async (t) => {
  const ctx = await context();
  if (typeof ctx === "string") return t.skip(ctx);
  const S = 16;
  const H = 16;
  // Every element names its source: Q (i, h) → (16 i + h) / 256, K → 1 + …, V → 2 + … (exact in f16).
  const qkv = new Float32Array(S * 3 * H);
  for (let i = 0; i < S; i++)
    for (let h = 0; h < H; h++)
      for (let a = 0; a < 3; a++) qkv[i * 3 * H + a * H + h] = a + (16 * i + h) / 256;
  const c: TcAttentionConfig = { multi: false, H, lengths: false, cu: false, debug: true, kvEndVar: true };
  const k = ctx.pipelines.get("test:tc-debug", () =>
    emulateSubgroupMatrices(tcAttentionSource(c, "template"), 32),
  );
  const u = singleHeadTcUniforms(S, H, 0.25);
  assert.equal(TC_ATTENTION_FIELDS.length * 4 <= u.byteLength, true);
  const buf = ctx.pool.upload(toF16(qkv));
  const out = ctx.pool.acquire(2 * S * H);
  const dh = ctx.pool.acquire(2 * TC_DEBUG_LAYOUT.halves);
  const df = ctx.pool.acquire(4 * TC_DEBUG_LAYOUT.floats);
  const rec = ctx.recorder();
  rec.dispatch(k, [buf, buf, buf, out, dh, df], u, [1, 1, 1]);
  await rec.submit();
  const h = fromF16(new Uint16Array(await ctx.pool.readback(dh, 2 * TC_DEBUG_LAYOUT.halves)));
  const f = await ctx.pool.readFloat32(df, TC_DEBUG_LAYOUT.floats);
  const src = (a: number, row: number, col: number) => a + (16 * row + col) / 256;
  for (let r = 0; r < 16; r++)
    for (let cc = 0; cc < 16; cc++) {
      assert.equal(h[r * 16 + cc], src(0, r, cc), "q0 (i, h) = Q[i][h]");
      assert.equal(h[256 + r * 16 + cc], src(1, cc, r), "K fragment (h, j) = K[j][h]");
      assert.equal(h[512 + r * 16 + cc], src(2, r, cc), "V fragment (j, h) = V[j][h]");
      assert.equal(h[8192 + r * 24 + cc], src(0, r, cc), "Qs");
      assert.equal(h[8576 + r * 24 + cc], src(1, r, cc), "Ks");
      assert.equal(h[8960 + r * 24 + cc], src(2, r, cc), "Vs");
      let s = 0;
      for (let x = 0; x < 16; x++) s += src(0, r, x) * src(1, cc, x);
      assert.ok(Math.abs(f[r * 16 + cc]! - s) < 1e-3 * Math.abs(s) + 1e-4, "S = Q·Kᵀ");
    }
});

test("tcAttentionChoiceFor: 64-key tiles (lazy), 32 up to 128 keys when eager, and where only they fit", () => {
  assert.equal(tcAttentionChoiceFor(128).keyTile, 64);
  assert.equal(tcAttentionChoiceFor(128, { lazy: false }).keyTile, 32);
  assert.equal(tcAttentionChoiceFor(512, { lazy: false }).keyTile, 64);
  assert.equal(tcAttentionChoiceFor(512).keyTile, 64);
  // H = 64 with 64-key tiles needs 35 856 bytes: over a 32 KiB device's limit, within the H200's 48 KiB.
  assert.equal(tcAttentionChoiceFor(512, {}, { H: 64, limit: 32768 }).keyTile, 32);
  assert.equal(tcAttentionChoiceFor(512, {}, { H: 64, limit: 49152 }).keyTile, 64);
  // A key tile the caller names is kept.
  assert.equal(tcAttentionChoiceFor(512, { keyTile: 64 }, { H: 64, limit: 32768 }).keyTile, 64);
  assert.equal(tcAttentionChoiceFor(64, { keyTile: 64, pInK: false }).pInK, false);
});
