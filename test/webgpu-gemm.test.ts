import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { WebGpuContext } from "../src/backends/webgpu/context.js";
import {
  type GemmTile,
  gemm,
  releaseGemmWeights,
  splitKSlices,
  TILE_LARGE,
  TILE_SMALL,
  uploadGemmWeights,
} from "../src/backends/webgpu/kernels/gemm.js";
import { subgroupGemmPlan } from "../src/backends/webgpu/kernels/gemm-subgroup.js";
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

/** float64 C = A·B (+bias) (gelu) (+residual), batch-broadcast B. */
function reference(
  A: Float32Array,
  B: Float32Array,
  batch: number,
  bBatched: boolean,
  M: number,
  N: number,
  K: number,
  bias?: Float32Array,
  useGelu = false,
  R?: Float32Array,
): Float64Array {
  const C = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++)
          s += A[b * M * K + m * K + k]! * B[(bBatched ? b * K * N : 0) + k * N + n]!;
        if (bias) s += bias[n]!;
        if (useGelu) s = gelu(s);
        if (R) s += R[b * M * N + m * N + n]!;
        C[b * M * N + m * N + n] = s;
      }
  return C;
}

type GemmCase = [number, number, number, number, boolean, GemmTile];

/** Each case (batch, M, N, K, B batched, tile) plain and with bias+GELU+residual, against float64 within 1e-4. */
async function checkCases(ctx: WebGpuContext, cases: GemmCase[], seed: number): Promise<void> {
  for (const [batch, M, N, K, bBatched, tile] of cases) {
    const A = rand(batch * M * K, seed++);
    const B = rand((bBatched ? batch : 1) * K * N, seed++);
    const bias = rand(N, seed++);
    const R = rand(batch * M * N, seed++);
    const aD = batch > 1 ? [batch, M, K] : [M, K];
    const bD = bBatched ? [batch, K, N] : [K, N];
    const oD = batch > 1 ? [batch, M, N] : [M, N];
    const plain = empty(ctx, oD);
    const full = empty(ctx, oD);
    const rec = ctx.recorder();
    const a = upload(ctx, A, aD);
    const b = upload(ctx, B, bD);
    gemm(ctx, rec, { a, b, out: plain, tile });
    gemm(ctx, rec, {
      a,
      b,
      out: full,
      bias: upload(ctx, bias, [N]),
      gelu: true,
      residual: upload(ctx, R, oD),
      tile,
    });
    await rec.submit();
    const sg = tile.subgroup ? ` subgroup${tile.sgLanes ? ` lanes ${tile.sgLanes}` : ""}` : "";
    const what = `[${batch}] ${M}x${N}x${K} tile ${tile.BM}x${tile.BN}x${tile.BK}/${tile.TM}x${tile.TN}${sg}`;
    assertClose(await read(ctx, plain), reference(A, B, batch, bBatched, M, N, K), 1e-4, what);
    assertClose(
      await read(ctx, full),
      reference(A, B, batch, bBatched, M, N, K, bias, true, R),
      1e-4,
      `${what} bias+gelu+residual`,
    );
  }
}

test("SGEMM matches float64 on odd shapes, both tiles, vec4 and scalar loads, every epilogue", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  // Each pipeline compiles in seconds on lavapipe, so the cases cover the baked flags (vec4 A: K % 4 = 0,
  // vec4 B: N % 4 = 0, tile) with few combinations.
  await checkCases(
    ctx,
    [
      // batch, M, N, K, B batched, tile
      [1, 1, 1, 1, false, TILE_SMALL],
      [1, 7, 5, 3, false, TILE_SMALL],
      [1, 33, 20, 36, false, TILE_SMALL],
      [2, 65, 130, 17, true, TILE_SMALL],
      [3, 70, 12, 40, false, TILE_LARGE],
      [1, 129, 131, 64, false, TILE_LARGE],
      // A 4×8-per-thread tile (bench/gpu-kernels.ts --tiles sweeps such shapes).
      [1, 65, 132, 40, false, { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8 }],
    ],
    1,
  );
});

test("subgroup SGEMM (A shared by shuffles) matches float64: both tiles, broadcast and shuffle lanes, every epilogue", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const sg = (tile: GemmTile, sgLanes?: number): GemmTile => ({ ...tile, subgroup: true, sgLanes });
  /** A 4×4 product forced onto `tile` (what the refusals below are about, not the numbers). */
  const forced = (tile: GemmTile) => () =>
    gemm(ctx, ctx.recorder(), {
      a: empty(ctx, [4, 4]),
      b: empty(ctx, [4, 4]),
      out: empty(ctx, [4, 4]),
      tile,
    });
  const plan = subgroupGemmPlan(ctx.gpu.features, TILE_LARGE);
  if (typeof plan === "string") {
    // Where it cannot run, forcing it is an OpError that says why, not a wrong answer.
    assert.throws(
      forced(sg(TILE_LARGE)),
      (e: unknown) => e instanceof OpError && /subgroup SGEMM/.test(e.message),
    );
    return t.skip(`subgroup SGEMM unavailable: ${plan}`);
  }
  const W = ctx.gpu.features.subgroupMinSize;
  t.diagnostic(`subgroup size ${W}-${ctx.gpu.features.subgroupMaxSize}, TILE_LARGE lane group ${plan.lanes}`);
  const cases: GemmCase[] = [
    // The default lane group (the whole subgroup where its size is fixed: subgroupBroadcast).
    [3, 70, 12, 40, false, sg(TILE_LARGE)],
    [1, 129, 131, 64, false, sg(TILE_LARGE)],
    [2, 65, 130, 17, true, sg(TILE_SMALL)], // scalar A and B loads, batched B
    [1, 7, 5, 3, false, sg(TILE_SMALL)],
    [1, 65, 132, 40, false, sg({ BM: 64, BN: 128, BK: 16, TM: 4, TN: 8 })],
    // A block smaller than the lane group (lanes past it hold nothing): 16×32×4 tile, 4 vec4s of A.
    [1, 19, 37, 9, false, sg({ BM: 16, BN: 32, BK: 4, TM: 4, TN: 4 })],
  ];
  // Lane groups smaller than the subgroup: subgroupShuffle from the group's first lane.
  if (W >= 8)
    cases.push([1, 33, 20, 36, false, sg(TILE_LARGE, W / 2)], [2, 50, 68, 24, false, sg(TILE_SMALL, 4)]);
  await checkCases(ctx, cases, 200);
  // A lane group the subgroup cannot hold is refused.
  assert.throws(
    forced(sg(TILE_SMALL, 3)),
    (e: unknown) => e instanceof OpError && /lane group 3/.test(e.message),
  );
});

test("split-K SGEMM (small M, long K): slices and the reducing epilogue match float64", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  // Batch-1 BERT's FFN down-projection shape class: few output tiles, long K (vec4 and scalar loads, ragged K).
  const shapes: [number, number, number][] = [
    [17, 36, 1030],
    [128, 64, 768],
    [5, 13, 601],
  ];
  let seed = 50;
  for (const [M, N, K] of shapes) {
    assert.ok(splitKSlices(M, N, K) > 1, `${M}x${N}x${K} is split`);
    const A = rand(M * K, seed++);
    const B = rand(K * N, seed++);
    const bias = rand(N, seed++);
    const R = rand(M * N, seed++);
    const plain = empty(ctx, [M, N]);
    const full = empty(ctx, [M, N]);
    const rec = ctx.recorder();
    const a = upload(ctx, A, [M, K]);
    const b = upload(ctx, B, [K, N]);
    gemm(ctx, rec, { a, b, out: plain });
    gemm(ctx, rec, {
      a,
      b,
      out: full,
      bias: upload(ctx, bias, [N]),
      gelu: true,
      residual: upload(ctx, R, [M, N]),
    });
    await rec.submit();
    const what = `${M}x${N}x${K} split ${splitKSlices(M, N, K)}`;
    assertClose(await read(ctx, plain), reference(A, B, 1, false, M, N, K), 1e-3, what);
    assertClose(
      await read(ctx, full),
      reference(A, B, 1, false, M, N, K, bias, true, R),
      1e-3,
      `${what} bias+gelu+residual`,
    );
  }
  // Large or batched products are not split.
  assert.equal(splitKSlices(4096, 768, 3072), 1);
  assert.equal(splitKSlices(128, 768, 256), 1);
});

test("SGEMM: weights uploaded once (transposed [N, K] → [K, N]) serve many calls; bad shapes are OpErrors", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const K = 24;
  const N = 10;
  const WT = rand(N * K, 99); // [N, K]
  const B = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) B[k * N + n] = WT[n * K + k]!;
  const bias = rand(N, 98);
  const w = uploadGemmWeights(ctx, WT, K, N, { transposed: true, bias });
  for (const M of [3, 50]) {
    const A = rand(M * K, M);
    const out = empty(ctx, [M, N]);
    const rec = ctx.recorder();
    gemm(ctx, rec, { a: upload(ctx, A, [M, K]), b: w.b, bias: w.bias, out });
    await rec.submit();
    assertClose(await read(ctx, out), reference(A, B, 1, false, M, N, K, bias), 1e-4, `M=${M}`);
  }
  releaseGemmWeights(ctx, w);
  assert.throws(
    () =>
      gemm(ctx, ctx.recorder(), { a: empty(ctx, [4, 5]), b: empty(ctx, [6, 2]), out: empty(ctx, [4, 2]) }),
    (e: unknown) => e instanceof OpError && /MatMul.*inner dimensions/.test(e.message),
  );
});

test("subgroupGemmPlan: lane groups by subgroup size and tile row, reasons where the variant cannot run", () => {
  const base = {
    subgroups: true,
    shaderF16: false,
    timestampQuery: false,
    subgroupMatrix: false,
    subgroupMatrixConfigs: [],
    subgroupsInOrder: true,
  };
  const fixed32 = { ...base, subgroupMinSize: 32, subgroupMaxSize: 32 }; // the H200
  // TILE_LARGE rows are 32 threads: one subgroup, constant broadcasts; TILE_SMALL rows are 16: shuffles.
  assert.deepEqual(subgroupGemmPlan(fixed32, TILE_LARGE), { lanes: 32, broadcast: true });
  assert.deepEqual(subgroupGemmPlan(fixed32, TILE_SMALL), { lanes: 16, broadcast: false });
  assert.deepEqual(subgroupGemmPlan(fixed32, TILE_LARGE, 8), { lanes: 8, broadcast: false });
  // A size range (16–32, as on Intel): groups of the smallest, by shuffle.
  assert.deepEqual(subgroupGemmPlan({ ...fixed32, subgroupMinSize: 16 }, TILE_LARGE), {
    lanes: 16,
    broadcast: false,
  });
  // A 24-thread row: the largest power of two dividing it.
  assert.deepEqual(subgroupGemmPlan(fixed32, { BN: 96, TN: 4 }), { lanes: 8, broadcast: false });
  assert.match(String(subgroupGemmPlan({ ...fixed32, subgroups: false }, TILE_LARGE)), /no subgroups/);
  assert.match(
    String(subgroupGemmPlan({ ...fixed32, subgroupsInOrder: false }, TILE_LARGE)),
    /invocation order/,
  );
  assert.match(String(subgroupGemmPlan({ ...fixed32, subgroupMinSize: 0 }, TILE_LARGE)), /size/);
  assert.match(String(subgroupGemmPlan(fixed32, TILE_LARGE, 64)), /lane group 64/);
});
