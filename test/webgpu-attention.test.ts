import assert from "node:assert/strict";
import { after, test } from "node:test";
import {
  type AttentionLayout,
  attentionSubgroups,
  type FastTuning,
  generalAttention,
  packedQkvAttention,
  varSeqlenQkvAttention,
} from "../src/backends/webgpu/kernels/attention.js";
import {
  fastAttentionKey,
  fastAttentionSharedBytes,
  fastPInK,
} from "../src/backends/webgpu/kernels/attention-fast.js";
import { OpError } from "../src/errors.js";
import { assertClose, disposeGpuContext, empty, gpuContext, rand, read, upload } from "./webgpu-helpers.js";

after(disposeGpuContext);

interface RefProblem {
  B: number;
  N: number;
  Nkv: number;
  Sq: number;
  Skv: number;
  H: number;
  Hv: number;
  scale: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  qL: AttentionLayout;
  kL: AttentionLayout;
  vL: AttentionLayout;
  oL: AttentionLayout;
  out: Float64Array;
  /** Per batch: [query rows, keys, seq start] (var-seqlen: rows = keys = length, at start). */
  seq?: (b: number) => [number, number, number];
  causalOffset?: number;
  bias?: (b: number, n: number, i: number, j: number) => number;
}

/**
 * float64 attention with the kernels' semantics: allowed keys j < keyLen (and j <= i + causalOffset), scores
 * plus bias, max over non-NaN scores, all -inf (or no key) → zeros, else softmax (NaN propagates).
 */
function reference(p: RefProblem): void {
  for (let b = 0; b < p.B; b++) {
    const [rows, keyLen, start] = p.seq ? p.seq(b) : [p.Sq, p.Skv, 0];
    for (let n = 0; n < p.N; n++) {
      const g = Math.floor(n / (p.N / p.Nkv));
      for (let i = 0; i < rows; i++) {
        let end = keyLen;
        if (p.causalOffset !== undefined) end = Math.max(0, Math.min(end, i + p.causalOffset + 1));
        const s: number[] = [];
        let m = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < end; j++) {
          let x = 0;
          const qo = p.qL.offset + b * p.qL.batchStride + n * p.qL.headStride + (start + i) * p.qL.seqStride;
          const ko = p.kL.offset + b * p.kL.batchStride + g * p.kL.headStride + (start + j) * p.kL.seqStride;
          for (let h = 0; h < p.H; h++) x += p.q[qo + h]! * p.scale * p.k[ko + h]!;
          if (p.bias) x += p.bias(b, n, i, j);
          s.push(x);
          if (x > m) m = x;
        }
        const oo = p.oL.offset + b * p.oL.batchStride + n * p.oL.headStride + (start + i) * p.oL.seqStride;
        const acc = new Float64Array(p.Hv);
        let sum = 0;
        if (m !== Number.NEGATIVE_INFINITY)
          s.forEach((x, j) => {
            const e = Math.exp(x - m);
            sum += e;
            if (e === 0) return;
            const vo =
              p.vL.offset + b * p.vL.batchStride + g * p.vL.headStride + (start + j) * p.vL.seqStride;
            for (let c = 0; c < p.Hv; c++) acc[c] += e * p.v[vo + c]!;
          });
        for (let c = 0; c < p.Hv; c++) p.out[oo + c] = sum === 0 ? 0 : acc[c]! / sum;
      }
    }
  }
}

function packedCase(S: number, B: number, N: number, H: number, lengths: number[] | undefined, seed: number) {
  const E = N * H;
  const qkv = rand(S * B * 3 * E, seed, 2);
  return { qkv, S, B, N, H, E, lengths };
}

/** Kernel choices the tests force (see FlashAttentionArgs). */
interface Tuning extends FastTuning {
  subgroups?: boolean;
}

async function runPacked(
  ctx: Exclude<Awaited<ReturnType<typeof gpuContext>>, string>,
  c: ReturnType<typeof packedCase>,
  tuning: Tuning = {},
) {
  const { qkv, S, B, N, H, E, lengths } = c;
  const out = empty(ctx, [S, B, E]);
  const rec = ctx.recorder();
  packedQkvAttention(ctx, rec, {
    qkv: upload(ctx, qkv, [S, B, 3 * E, 1, 1]),
    numHeads: N,
    lengths: lengths ? ctx.pool.upload(Int32Array.from(lengths)) : undefined,
    out,
    ...tuning,
  });
  await rec.submit();
  const want = new Float64Array(S * B * E);
  const inRow = (t: number) => ({
    offset: t * H,
    batchStride: 3 * E,
    headStride: 3 * H,
    seqStride: B * 3 * E,
  });
  reference({
    B,
    N,
    Nkv: N,
    Sq: S,
    Skv: S,
    H,
    Hv: H,
    scale: 1 / Math.sqrt(H),
    q: qkv,
    k: qkv,
    v: qkv,
    qL: inRow(0),
    kL: inRow(1),
    vL: inRow(2),
    oL: { offset: 0, batchStride: E, headStride: H, seqStride: B * E },
    out: want,
    seq: (b) => [S, lengths ? Math.max(0, Math.min(S, lengths[b]!)) : S, 0],
  });
  return { got: await read(ctx, out), want };
}

test("packed QKV [S, B, 3E]: lengths 0, 1, partial, full, > S; padded rows computed over the valid keys", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const c = packedCase(37, 5, 3, 8, [0, 1, 37, 20, 99], 1);
  // Both softmax forms: subgroups (where the adapter has them) and the workgroup-memory fallback.
  for (const subgroups of [undefined, false]) {
    const { got, want } = await runPacked(ctx, c, { subgroups });
    assertClose(got, want, 1e-4, `packed H=8 (subgroups ${subgroups ?? "auto"})`);
    // Length 0: zero rows; length 1: every row (padded ones too) is V of key 0.
    const E = 24;
    for (let s = 0; s < 37; s++) {
      for (let e = 0; e < E; e++) assert.equal(got[(s * 5 + 0) * E + e], 0);
    }
  }
});

test("packed QKV at BERT's head size 64 (vec4 path) and an odd head size (scalar path)", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  for (const c of [packedCase(70, 2, 2, 64, [70, 33], 2), packedCase(9, 3, 2, 5, [9, 4, 1], 3)]) {
    const { got, want } = await runPacked(ctx, c);
    assertClose(got, want, 1e-4, `packed H=${c.H}`);
  }
});

test("packed QKV: NaN where the CPU kernel propagates it, never from keys past the length", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const c = packedCase(12, 3, 2, 4, [12, 6, 6], 4);
  const { B, E, H } = c;
  const at = (s: number, b: number, n: number, part: number, h: number) =>
    (s * B + b) * 3 * E + n * 3 * H + part * H + h;
  c.qkv[at(3, 0, 1, 2, 2)] = Number.NaN; // V of a valid key of batch 0, head 1: every row of that head is NaN
  c.qkv[at(9, 1, 0, 1, 0)] = Number.NaN; // K past batch 1's length: ignored
  c.qkv[at(10, 1, 1, 2, 3)] = Number.NaN; // V past batch 1's length: ignored
  c.qkv[at(2, 2, 0, 1, 1)] = Number.NaN; // K of a valid key of batch 2: NaN score → NaN rows (head 0)
  const { got, want } = await runPacked(ctx, c);
  assertClose(got, want, 1e-4, "packed NaN");
  assert.ok(Number.isNaN(got[(0 * B + 0) * E + H + 2]!), "batch 0 head 1 column 2 is NaN");
  assert.ok(
    got.slice((0 * B + 1) * E, (0 * B + 1) * E + E).every((x) => !Number.isNaN(x)),
    "batch 1 is finite",
  );
  assert.ok(Number.isNaN(got[(5 * B + 2) * E + 0]!), "batch 2 head 0 is NaN");
});

test("var-seqlen [T, 3E] with cu_seqlens: empty and single-token sequences, rows outside stay untouched", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const cu = [0, 5, 5, 38, 39];
  const B = 4;
  const T = 39;
  const N = 2;
  const H = 8;
  const E = N * H;
  const qkv = rand(T * 3 * E, 7, 2);
  const out = upload(ctx, new Float32Array(T * E).fill(7), [T, E]);
  const rec = ctx.recorder();
  varSeqlenQkvAttention(ctx, rec, {
    qkv: upload(ctx, qkv, [T, 3 * E, 1, 1]),
    numHeads: N,
    cuSeqlens: ctx.pool.upload(Int32Array.from(cu)),
    batch: B,
    maxSeqlen: 33,
    out,
  });
  await rec.submit();
  const want = new Float64Array(T * E);
  const inRow = (t: number) => ({ offset: t * H, batchStride: 0, headStride: 3 * H, seqStride: 3 * E });
  reference({
    B,
    N,
    Nkv: N,
    Sq: 33,
    Skv: 33,
    H,
    Hv: H,
    scale: 1 / Math.sqrt(H),
    q: qkv,
    k: qkv,
    v: qkv,
    qL: inRow(0),
    kL: inRow(1),
    vL: inRow(2),
    oL: { offset: 0, batchStride: 0, headStride: H, seqStride: E },
    out: want,
    seq: (b) => [cu[b + 1]! - cu[b]!, cu[b + 1]! - cu[b]!, cu[b]!],
  });
  assertClose(await read(ctx, out), want, 1e-4, "var-seqlen");
});

function layoutOf(l: "BSNH" | "BNSH", S: number, N: number, H: number): AttentionLayout {
  return l === "BSNH"
    ? { offset: 0, batchStride: S * N * H, headStride: H, seqStride: N * H }
    : { offset: 0, batchStride: N * S * H, headStride: S * H, seqStride: H };
}

interface GeneralCase {
  layout: "BSNH" | "BNSH";
  B: number;
  N: number;
  Nkv: number;
  Sq: number;
  Skv: number;
  H: number;
  Hv: number;
  causal: number | undefined;
  /** Bias dims (broadcast to [B, N, Sq, Skv]); every 7th value is -inf. */
  bias: number[];
  lens: number[] | undefined;
}

/** The general op on random data from `seed`, and the float64 reference. */
async function runGeneral(
  ctx: Exclude<Awaited<ReturnType<typeof gpuContext>>, string>,
  c: GeneralCase,
  seed: number,
  tuning: Tuning = {},
) {
  const dims = (S: number, N: number, H: number) => (c.layout === "BSNH" ? [c.B, S, N, H] : [c.B, N, S, H]);
  const q = rand(c.B * c.Sq * c.N * c.H, seed, 2);
  const k = rand(c.B * c.Skv * c.Nkv * c.H, seed + 1, 2);
  const v = rand(c.B * c.Skv * c.Nkv * c.Hv, seed + 2, 2);
  const biasData = rand(
    c.bias.reduce((a, b) => a * b, 1),
    seed + 3,
    3,
  );
  for (let i = 0; i < biasData.length; i += 7) biasData[i] = Number.NEGATIVE_INFINITY;
  const full = [...Array(4 - c.bias.length).fill(1), ...c.bias] as number[];
  const biasAt = (b: number, n: number, i: number, j: number) => {
    const idx = [b, n, i, j].map((x, ax) => (full[ax] === 1 ? 0 : x));
    return biasData[((idx[0]! * full[1]! + idx[1]!) * full[2]! + idx[2]!) * full[3]! + idx[3]!]!;
  };
  const out = empty(ctx, dims(c.Sq, c.N, c.Hv));
  const rec = ctx.recorder();
  generalAttention(ctx, rec, {
    q: upload(ctx, q, dims(c.Sq, c.N, c.H)),
    k: upload(ctx, k, dims(c.Skv, c.Nkv, c.H)),
    v: upload(ctx, v, dims(c.Skv, c.Nkv, c.Hv)),
    layout: c.layout,
    out,
    causalOffset: c.causal,
    bias: upload(ctx, biasData, c.bias),
    keyLengths: c.lens ? ctx.pool.upload(Int32Array.from(c.lens)) : undefined,
    ...tuning,
  });
  await rec.submit();
  const want = new Float64Array(c.B * c.Sq * c.N * c.Hv);
  reference({
    B: c.B,
    N: c.N,
    Nkv: c.Nkv,
    Sq: c.Sq,
    Skv: c.Skv,
    H: c.H,
    Hv: c.Hv,
    scale: 1 / Math.sqrt(c.H),
    q,
    k,
    v,
    qL: layoutOf(c.layout, c.Sq, c.N, c.H),
    kL: layoutOf(c.layout, c.Skv, c.Nkv, c.H),
    vL: layoutOf(c.layout, c.Skv, c.Nkv, c.Hv),
    oL: layoutOf(c.layout, c.Sq, c.N, c.Hv),
    out: want,
    seq: (b) => [c.Sq, c.lens ? c.lens[b]! : c.Skv, 0],
    causalOffset: c.causal,
    bias: biasAt,
  });
  return { got: await read(ctx, out), want };
}

test("general op: BSNH/BNSH, GQA, causal (Sq ≠ Skv, both alignments), broadcast bias with -inf, key lengths; subgroup and workgroup softmax", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const cases: GeneralCase[] = [
    {
      layout: "BSNH",
      B: 2,
      N: 4,
      Nkv: 2,
      Sq: 7,
      Skv: 45,
      H: 8,
      Hv: 12,
      causal: 38,
      bias: [1, 4, 7, 45],
      lens: undefined,
    },
    {
      layout: "BNSH",
      B: 3,
      N: 2,
      Nkv: 1,
      Sq: 33,
      Skv: 20,
      H: 6,
      Hv: 3,
      causal: 0,
      bias: [3, 1, 1, 20],
      lens: [20, 0, 9],
    },
    {
      layout: "BNSH",
      B: 1,
      N: 3,
      Nkv: 3,
      Sq: 66,
      Skv: 66,
      H: 16,
      Hv: 16,
      causal: undefined,
      bias: [66],
      lens: undefined,
    },
  ];
  let seed = 20;
  for (const c of cases) {
    for (const subgroups of [undefined, false]) {
      const { got, want } = await runGeneral(ctx, c, seed, { subgroups });
      assertClose(got, want, 1e-4, `${c.layout} subgroups ${subgroups ?? "auto"} ${JSON.stringify(c)}`);
    }
    seed += 4;
  }
  // Where the adapter has subgroups of >= 8 (lavapipe: 8, NVIDIA: 32) the default is the subgroup variant.
  const sgKeys = ctx.pipelines.keys().filter((k) => k.startsWith("flash:") && k.includes(":sg1"));
  assert.equal(sgKeys.length > 0, attentionSubgroups(ctx), `flash pipelines: ${ctx.pipelines.keys()}`);
  assert.throws(
    () =>
      generalAttention(ctx, ctx.recorder(), {
        q: empty(ctx, [1, 2, 3, 4]),
        k: empty(ctx, [1, 2, 3, 5]),
        v: empty(ctx, [1, 2, 3, 4]),
        layout: "BSNH",
        out: empty(ctx, [1, 2, 3, 4]),
      }),
    (e: unknown) => e instanceof OpError && /Attention.*k head size/.test(e.message),
  );
});

/** The subgroup kernel's tile choices: rows per thread, rows per workgroup, P through workgroup memory or shuffles. */
const LEGACY_VARIANTS: Tuning[] = [
  ...[8, 4, 2].flatMap((rowsPerThread) => [64, 32].map((rowTile) => ({ rowsPerThread, rowTile }))),
  { rowsPerThread: 6, rowTile: 48 },
].flatMap((v) => [false, true].map((shuffleP) => ({ ...v, shuffleP })));
// The K/V tiles loaded right before their use instead of through registers (the prefetch is the default).
LEGACY_VARIANTS.push(
  { rowsPerThread: 4, rowTile: 32, prefetchKV: false },
  { rowsPerThread: 4, rowTile: 64, prefetchKV: false },
);
// 64-key tiles (8 keys a lane), the products' loops written out, swizzled Q/K tiles in 48 KiB (pack).
LEGACY_VARIANTS.push(
  { rowsPerThread: 4, rowTile: 64, unroll: true },
  { rowsPerThread: 2, rowTile: 64, shuffleP: true, unroll: true },
  { rowsPerThread: 4, rowTile: 64, shuffleP: true, pack: true },
  { rowsPerThread: 4, rowTile: 32, keyTile: 64 },
  { rowsPerThread: 4, rowTile: 64, keyTile: 64, shuffleP: true },
  { rowsPerThread: 2, rowTile: 64, keyTile: 64, shuffleP: true, pack: true, unroll: true },
  { rowsPerThread: 4, rowTile: 64, keyTile: 64, shuffleP: true, pack: true, prefetchKV: false },
  // K and V prefetched in turn (one tile of registers).
  { rowsPerThread: 4, rowTile: 64, interleaveKV: true },
  { rowsPerThread: 2, rowTile: 32, keyTile: 64, interleaveKV: true },
  { rowsPerThread: 4, rowTile: 64, keyTile: 64, shuffleP: true, pack: true, interleaveKV: true },
  // P in the K tile's memory (where it fits: else the P tile).
  { rowsPerThread: 2, rowTile: 32, pInK: true },
  { rowsPerThread: 4, rowTile: 32, keyTile: 64, pack: true, pInK: true },
  { rowsPerThread: 4, rowTile: 64, keyTile: 64, pack: true, pInK: true },
  // Swizzled tiles with 4 row groups (TY % 8 ≠ 0: each of a thread's rows has its own XOR).
  { rowsPerThread: 8, rowTile: 32, keyTile: 64, pack: true, pInK: true, interleaveKV: true },
  // The default (attention.ts FAST_LAYOUTS) and its 32-row tile (lavapipe holds that one at H = 32).
  { rowsPerThread: 4, rowTile: 64, keyTile: 64, pack: true, pInK: true, interleaveKV: true },
  { rowsPerThread: 4, rowTile: 32, keyTile: 64, pack: true, pInK: true, interleaveKV: true },
);

/**
 * Every variant spelled out (the layout fields not given would take attention.ts's defaults, FAST_LAYOUTS): the
 * 32-key layout with padded tiles unless the entry names another.
 */
const FAST_VARIANTS: Tuning[] = LEGACY_VARIANTS.map((v) => ({
  keyTile: 32,
  pack: false,
  pInK: false,
  interleaveKV: false,
  ...v,
}));

/** A spelled-out variant as the kernel's config at head sizes H / HV (rows per thread and row tile given). */
const configOf = (v: Tuning, H: number, HV: number) => ({
  ...v,
  H,
  HV,
  RT: v.rowsPerThread!,
  TY: v.rowTile! / v.rowsPerThread!,
});

/** Whether a variant's tiles fit the device's workgroup memory at head size H. */
function fits(
  ctx: Exclude<Awaited<ReturnType<typeof gpuContext>>, string>,
  v: Tuning,
  H: number,
  HV = H,
): boolean {
  return fastAttentionSharedBytes(configOf(v, H, HV)) <= ctx.gpu.limits.maxComputeWorkgroupStorageSize;
}

/** Whether the last dispatches compiled this variant of the subgroup kernel (not the fallback). */
function usedVariant(
  ctx: Exclude<Awaited<ReturnType<typeof gpuContext>>, string>,
  v: Tuning,
  H: number,
  HV = H,
): boolean {
  const tag = `:${fastAttentionKey(configOf(v, H, HV))}`;
  // The head sizes in the key: a kernel another loop left in the cache at another head size does not count.
  return ctx.pipelines.keys().some((k) => k.startsWith(`flash:H${H}:HV${HV}:`) && k.endsWith(tag));
}

test("subgroup kernel, every tile variant: odd lengths (0, 1, partial, > S), S not a multiple of the tile, NaN", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!attentionSubgroups(ctx)) return t.skip("no subgroups of >= 8 invocations");
  // H = 32 so the variants' tiles fit lavapipe's 32 KiB of workgroup memory (all but 64 rows and 64 keys with
  // P in the K tile's memory, where P does not fit at this head size: a P tile of its own).
  const c = packedCase(77, 5, 2, 32, [0, 1, 77, 45, 200], 40);
  const { B, E, H } = c;
  const at = (s: number, b: number, n: number, part: number, h: number) =>
    (s * B + b) * 3 * E + n * 3 * H + part * H + h;
  c.qkv[at(70, 3, 0, 2, 5)] = Number.NaN; // V past batch 3's length: ignored
  c.qkv[at(50, 1, 1, 1, 0)] = Number.NaN; // K past batch 1's length (1): ignored
  c.qkv[at(40, 4, 1, 1, 3)] = Number.NaN; // K of a valid key of batch 4: head 1 rows NaN
  for (const v of FAST_VARIANTS.filter((x) => fits(ctx, x, 32))) {
    const { got, want } = await runPacked(ctx, c, v);
    assertClose(got, want, 1e-4, `packed H=32 ${JSON.stringify(v)}`);
    assert.ok(usedVariant(ctx, v, 32), `variant ${JSON.stringify(v)} ran: ${ctx.pipelines.keys()}`);
    assert.ok(Number.isNaN(got[(3 * B + 4) * E + H]!), "batch 4 head 1 is NaN");
    assert.ok(
      got.slice((0 * B + 1) * E, (0 * B + 1) * E + E).every((x) => !Number.isNaN(x)),
      "batch 1 is finite",
    );
  }
  // Head size 64 (BERT): the variants whose tiles the device's workgroup memory holds there (lavapipe's 32 KiB:
  // the 32-row tiles of 32 keys).
  const c64 = packedCase(45, 2, 2, 64, [45, 13], 41);
  for (const v of FAST_VARIANTS.filter((x) => fits(ctx, x, 64))) {
    const { got, want } = await runPacked(ctx, c64, v);
    assertClose(got, want, 1e-4, `packed H=64 ${JSON.stringify(v)}`);
    assert.ok(usedVariant(ctx, v, 64), `variant ${JSON.stringify(v)} ran`);
  }
  // Scalar rows (H = 30: no vec4 loads, no prefetch) in the packed layout, which swizzles them (round4(H) / 4 = 8).
  const c30 = packedCase(45, 2, 2, 30, [45, 13], 44);
  const packed30 = FAST_VARIANTS.filter((x) => x.pack && fits(ctx, x, 30));
  const ran30: Tuning[] = [];
  for (const v of [packed30.find((x) => fastPInK(configOf(x, 30, 30))), packed30.at(-1)]) {
    if (!v) continue;
    ran30.push(v);
    const { got, want } = await runPacked(ctx, c30, v);
    assertClose(got, want, 1e-4, `packed H=30 ${JSON.stringify(v)}`);
    assert.ok(usedVariant(ctx, v, 30), `variant ${JSON.stringify(v)} ran at H=30`);
  }
  t.diagnostic(`H = 30, packed: ${ran30.map((v) => JSON.stringify(v)).join(" ")}`);
  // Wider heads (Phi-3's 96, Llama's 128) by default: the packed 32-key layout, at 64 rows (96) and at 32 rows
  // with 2 rows a thread (128), where the device holds it (48 KiB; with lavapipe's 32 KiB the workgroup-memory
  // kernel runs, as before).
  const wide: [number, Tuning][] = [
    [96, { rowsPerThread: 4, rowTile: 64 }],
    [128, { rowsPerThread: 2, rowTile: 32 }],
  ];
  for (const [Hw, rows] of wide) {
    const v: Tuning = { ...rows, keyTile: 32, pack: true, pInK: true, interleaveKV: false };
    if (!fits(ctx, v, Hw)) continue;
    const cw = packedCase(45, 2, 2, Hw, [45, 13], 43);
    const { got, want } = await runPacked(ctx, cw);
    assertClose(got, want, 1e-4, `packed H=${Hw} default`);
    assert.ok(usedVariant(ctx, v, Hw), `H=${Hw} ran ${JSON.stringify(v)}: ${ctx.pipelines.keys().join(" ")}`);
  }
});

test("subgroup kernel, every tile variant: causal GQA with -inf bias and key lengths; Hv not a multiple of 32; scalar path", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!attentionSubgroups(ctx)) return t.skip("no subgroups of >= 8 invocations");
  const cases: GeneralCase[] = [
    {
      layout: "BSNH",
      B: 2,
      N: 4,
      Nkv: 2,
      Sq: 19,
      Skv: 70,
      H: 8,
      Hv: 12,
      causal: 51,
      bias: [2, 1, 19, 70],
      lens: [70, 40],
    },
    // Vec4 rows (the prefetch, K/V in turn) at a head size whose Q/K tiles swizzle (pack) and whose 32-row
    // tiles take P in the K tile's memory; Hv ≠ H.
    {
      layout: "BSNH",
      B: 2,
      N: 4,
      Nkv: 2,
      Sq: 37,
      Skv: 90,
      H: 32,
      Hv: 40,
      causal: 60,
      bias: [2, 1, 37, 90],
      lens: [90, 51],
    },
    {
      layout: "BNSH",
      B: 2,
      N: 2,
      Nkv: 1,
      Sq: 69,
      Skv: 69,
      H: 6,
      Hv: 5,
      causal: 0,
      bias: [69],
      lens: [0, 33],
    },
  ];
  let seed = 60;
  // What the mask, bias and causal code depends on: the key tile, where P goes, the K tile's layout and the
  // K/V load order (rows per thread and unrolled loops are the packed test's, above). One variant of each
  // that the device holds on the vector cases (lavapipe compiles every kernel slowly); two opposite ones on
  // the scalar path.
  const forms = (H: number, Hv: number): Tuning[] => {
    const byForm = new Map<string, Tuning>();
    for (const v of FAST_VARIANTS.filter((x) => fits(ctx, x, H, Hv))) {
      const pInK = fastPInK(configOf(v, H, Hv));
      const form = `${v.keyTile}:${v.shuffleP === true}:${pInK}:${v.pack}:${v.interleaveKV}:${v.prefetchKV}`;
      if (!byForm.has(form)) byForm.set(form, v);
    }
    return [...byForm.values()];
  };
  for (const c of cases) {
    const scalar = c.H % 4 !== 0 || c.Hv % 4 !== 0;
    for (const v of scalar ? [FAST_VARIANTS[0]!, FAST_VARIANTS.at(-1)!] : forms(c.H, c.Hv)) {
      const { got, want } = await runGeneral(ctx, c, seed, v);
      assertClose(got, want, 1e-4, `${c.layout} ${JSON.stringify(v)} ${JSON.stringify(c)}`);
      assert.ok(
        usedVariant(ctx, v, c.H, c.Hv),
        `variant ${JSON.stringify(v)} ran at H=${c.H}: ${ctx.pipelines
          .keys()
          .filter((k) => k.startsWith("flash"))
          .join(" ")}`,
      );
    }
    seed += 4;
  }
});

test("a rowTile that is not a positive multiple of 4 is an OpError on either kernel, not invalid WGSL", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const c = packedCase(9, 1, 2, 8, [9], 42);
  for (const subgroups of [false, true]) {
    await assert.rejects(
      runPacked(ctx, c, { rowTile: 6, subgroups }),
      (e: unknown) => e instanceof OpError && /rowTile 6 must be a positive multiple of 4/.test(e.message),
      `subgroups ${subgroups}`,
    );
  }
});
