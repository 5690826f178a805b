import assert from "node:assert/strict";
import { after, test } from "node:test";
import {
  gemm,
  releaseGemmWeights,
  splitKSlices,
  TILE_LARGE,
  TILE_SMALL,
  uploadGemmWeights,
} from "../src/backends/webgpu/kernels/gemm.js";
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

test("SGEMM matches float64 on odd shapes, both tiles, vec4 and scalar loads, every epilogue", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  // Each pipeline compiles in seconds on lavapipe, so the cases cover the baked flags (vec4 A: K % 4 = 0,
  // vec4 B: N % 4 = 0, tile) with few combinations.
  const shapes: [number, number, number, number, boolean, typeof TILE_SMALL][] = [
    // batch, M, N, K, B batched, tile
    [1, 1, 1, 1, false, TILE_SMALL],
    [1, 7, 5, 3, false, TILE_SMALL],
    [1, 33, 20, 36, false, TILE_SMALL],
    [2, 65, 130, 17, true, TILE_SMALL],
    [3, 70, 12, 40, false, TILE_LARGE],
    [1, 129, 131, 64, false, TILE_LARGE],
    // A 4×8-per-thread tile (bench/gpu-kernels.ts --tiles sweeps such shapes).
    [1, 65, 132, 40, false, { BM: 64, BN: 128, BK: 16, TM: 4, TN: 8 }],
  ];
  let seed = 1;
  for (const [batch, M, N, K, bBatched, tile] of shapes) {
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
    const what = `[${batch}] ${M}x${N}x${K} tile ${tile.BM}x${tile.BN}/${tile.TM}x${tile.TN}`;
    assertClose(await read(ctx, plain), reference(A, B, batch, bBatched, M, N, K), 1e-4, what);
    assertClose(
      await read(ctx, full),
      reference(A, B, batch, bBatched, M, N, K, bias, true, R),
      1e-4,
      `${what} bias+gelu+residual`,
    );
  }
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
