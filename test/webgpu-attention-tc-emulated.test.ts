/**
 * The tensor-core attention's WGSL (attention-tc.ts) run on lavapipe through an emulation of the subgroup
 * matrices (test/tc-emulation.ts): checks the kernel's index arithmetic — staging, fragment offsets and
 * strides, the lane → (row, side) mapping, the online softmax, the output packing — through the real dispatch
 * (packedQkvAttention / varSeqlenQkvAttention, uniforms and all) against the SIMT fp16 kernel. The emulated
 * pipeline is put in the context's pipeline cache under the key flashAttention asks for. Only kernels that take
 * the subgroup and lane from local_invocation_index run here (sgBuiltin false). Also checks what the probe
 * kernel's debug dumps (TcAttentionConfig.debug) hold, so bench/tc-attention-probe.ts decodes them right.
 * lavapipe runs the emulation slowly (minutes for the larger shapes and the debug kernel): by default only
 * H = 16 runs (S = 16, and var-seqlen); MHAFUSE_TC_EMULATION=1 runs everything.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { packedQkvAttention, varSeqlenQkvAttention } from "../src/backends/webgpu/kernels/attention.js";
import {
  singleHeadTcUniforms,
  TC_ATTENTION_FIELDS,
  TC_DEBUG_LAYOUT,
  type TcAttentionConfig,
  tcAttentionSource,
  tcAttentionSupports,
} from "../src/backends/webgpu/kernels/attention-tc.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { type F16Kernel, fromF16, toF16 } from "../src/backends/webgpu/precision.js";
import { BackendUnavailableError } from "../src/errors.js";
import { emulateSubgroupMatrices } from "./tc-emulation.js";
import { rand } from "./webgpu-helpers.js";

let ctxPromise: Promise<WebGpuContext | string> | undefined;
function context(): Promise<WebGpuContext | string> {
  ctxPromise ??= WebGpuContext.create({ unsafeF16: true }).then(
    (ctx) => (ctx.gpu.features.shaderF16 ? ctx : "no shader-f16"),
    (e: unknown) => {
      if (e instanceof BackendUnavailableError) return e.message;
      throw e;
    },
  );
  return ctxPromise;
}
after(async () => {
  const c = await ctxPromise;
  if (c instanceof WebGpuContext) c.dispose();
});

/** Makes flashAttention take the (emulated) tensor-core kernel: a fake detection and a pre-filled cache. */
function useEmulated(ctx: WebGpuContext, c: Omit<TcAttentionConfig, "sgBuiltin">): void {
  const real = ctx.f16!;
  ctx.f16 = { ...real, syntax: "template", multiSubgroup: c.multi, sgBuiltin: false };
  const key = `flash-tc:template:m${+c.multi}:sgb0:H${c.H}:len${+c.lengths}:cu${+c.cu}`;
  ctx.pipelines.get(key, () => emulateSubgroupMatrices(tcAttentionSource(c, "template"), c.multi ? 128 : 32));
}

async function packed(
  ctx: WebGpuContext,
  kernel: F16Kernel,
  S: number,
  B: number,
  N: number,
  H: number,
  lengths?: number[],
) {
  const E = N * H;
  const qkv = rand(S * B * 3 * E, S * 7 + B + N + H);
  const out: GpuTensor = { buffer: ctx.pool.acquire(2 * S * B * E + 4), dims: [S, B, E] };
  const rec = ctx.recorder();
  packedQkvAttention(ctx, rec, {
    qkv: { buffer: ctx.pool.upload(toF16(qkv)), dims: [S, B, 3 * E] },
    numHeads: N,
    lengths: lengths ? ctx.pool.upload(Int32Array.from(lengths)) : undefined,
    out,
    precision: "fp16",
    f16Kernel: kernel,
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
type Shape = [multi: boolean, S: number, B: number, N: number, H: number, lengths?: number[]];
const shapes: Shape[] = [
  [false, 16, 1, 1, 16],
  ...(full
    ? ([
        [false, 33, 1, 1, 32],
        [false, 40, 2, 2, 16, [40, 3]],
        [true, 80, 2, 1, 16, [80, 17]],
      ] satisfies Shape[])
    : []),
];

test("tensor-core attention WGSL, emulated subgroup matrices: matches the SIMT fp16 kernel", async (t) => {
  const ctx = await context();
  if (typeof ctx === "string") return t.skip(ctx);
  const limit = ctx.gpu.limits.maxComputeWorkgroupStorageSize;
  const saved = ctx.f16;
  try {
    for (const [multi, S, B, N, H, lengths] of shapes) {
      if (!tcAttentionSupports(H, H, limit, multi)) {
        t.diagnostic(`skipped multi=${multi} H=${H}: workgroup memory ${limit}`);
        continue;
      }
      const want = await packed(ctx, "simt", S, B, N, H, lengths);
      useEmulated(ctx, { multi, H, lengths: !!lengths, cu: false });
      const got = await packed(ctx, "tensor-core", S, B, N, H, lengths);
      ctx.f16 = saved;
      const d = maxDiff(got, want);
      assert.ok(d <= 2e-3, `multi=${multi} S=${S} B=${B} N=${N} H=${H}: max |tc - simt| ${d}`);
    }
  } finally {
    ctx.f16 = saved;
  }
});

test("tensor-core attention WGSL, emulated: var-seqlen (cu_seqlens), empty sequences", async (t) => {
  const ctx = await context();
  if (typeof ctx === "string") return t.skip(ctx);
  const saved = ctx.f16;
  // H = 16 by default (the emulation compiles fast), 32 with MHAFUSE_TC_EMULATION=1.
  const H = full ? 32 : 16;
  const N = 2;
  const E = N * H;
  // An empty sequence in the middle and at the end (it starts at T: nothing of it may be read).
  const cu = [0, 5, 5, 40, 41, 41];
  const T = cu[cu.length - 1]!;
  const qkv = rand(T * 3 * E, 99);
  const run = async (kernel: F16Kernel) => {
    const out: GpuTensor = { buffer: ctx.pool.acquire(2 * T * E + 4), dims: [T, E] };
    const rec = ctx.recorder();
    varSeqlenQkvAttention(ctx, rec, {
      qkv: { buffer: ctx.pool.upload(toF16(qkv)), dims: [T, 3 * E] },
      cuSeqlens: ctx.pool.upload(Int32Array.from(cu)),
      batch: cu.length - 1,
      maxSeqlen: 35,
      numHeads: N,
      out,
      precision: "fp16",
      f16Kernel: kernel,
    });
    await rec.submit();
    return fromF16(new Uint16Array(await ctx.pool.readback(out.buffer, 2 * T * E)), T * E);
  };
  try {
    const want = await run("simt");
    useEmulated(ctx, { multi: false, H, lengths: false, cu: true });
    const got = await run("tensor-core");
    const d = maxDiff(got, want);
    assert.ok(d <= 2e-3, `var-seqlen: max |tc - simt| ${d}`);
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
