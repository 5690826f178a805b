import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Attribute, Node } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import "../src/ops/cumsum.js";
import "../src/ops/normalization.js";
import "../src/ops/reduce.js";
import "../src/ops/rotary.js";
import "../src/ops/softmax.js";
import { getOp } from "../src/ops/registry.js";
import { assertValues } from "./support/compare.js";
import { runOp } from "./support/ops.js";

// ---- helpers ------------------------------------------------------------------------------------------

function rand(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}
const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const randTensor = (dims: number[], seed: number, scale = 1) =>
  new Tensor(
    "float32",
    rand(size(dims), seed).map((v) => v * scale),
    dims,
  );

const int = (value: number): Attribute => ({ type: "int", value });
const ints = (value: number[]): Attribute => ({ type: "ints", value });
const float = (value: number): Attribute => ({ type: "float", value });

// ---- Softmax --------------------------------------------------------------------------------------------

test("Softmax: opset 11 flattens at axis, opset 13 normalises one axis (3-D input)", () => {
  const dims = [2, 3, 4];
  const x = randTensor(dims, 1, 3);
  const v = x.toFloat64();
  // opset 11, axis=1: each of the 2 rows of 12 values sums to 1.
  const want11: number[] = [];
  for (let b = 0; b < 2; b++) {
    const row = [...v.slice(b * 12, b * 12 + 12)];
    const m = Math.max(...row);
    const e = row.map((r) => Math.exp(r - m));
    const s = e.reduce((p, q) => p + q, 0);
    want11.push(...e.map((q) => q / s));
  }
  assertValues(runOp("Softmax", [x], { axis: int(1) }, 11)[0]!, dims, want11);
  // opset 11 default axis is 1 as well.
  assertValues(runOp("Softmax", [x], {}, 11)[0]!, dims, want11);
  // opset 13, axis=1: softmax over the 3 values at fixed (b, k).
  const want13 = new Array<number>(24);
  for (let b = 0; b < 2; b++) {
    for (let k = 0; k < 4; k++) {
      const at = (j: number) => b * 12 + j * 4 + k;
      const s = [0, 1, 2].reduce((p, j) => p + Math.exp(v[at(j)]!), 0);
      for (let j = 0; j < 3; j++) want13[at(j)] = Math.exp(v[at(j)]!) / s;
    }
  }
  assertValues(runOp("Softmax", [x], { axis: int(1) }, 13)[0]!, dims, want13);
  // opset 13 default axis -1 and opset 11 with axis=2 agree (last axis either way).
  const last = runOp("Softmax", [x], {}, 13)[0]!;
  assertValues(runOp("Softmax", [x], { axis: int(2) }, 11)[0]!, dims, [...last.toFloat64()]);
  assert.notDeepEqual(want11, want13);
});

test("Softmax hand-computed and large values stay finite", () => {
  const x = new Tensor("float32", [0, Math.log(3), 1000, 1000], [2, 2]);
  assertValues(runOp("Softmax", [x], {}, 13)[0]!, [2, 2], [0.25, 0.75, 0.5, 0.5]);
});

// ---- LayerNormalization / RMSNormalization / SkipLayerNormalization ---------------------------------------

/** Float64 layer norm over the trailing `D` values of each row; returns y, mean and 1/σ. */
function refLayerNorm(
  x: Float64Array,
  D: number,
  eps: number,
  scale: number[],
  bias?: number[],
  rms = false,
) {
  const rows = x.length / D;
  const y: number[] = [];
  const mean: number[] = [];
  const inv: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = [...x.slice(r * D, r * D + D)];
    const mu = rms ? 0 : row.reduce((a, b) => a + b, 0) / D;
    const variance = row.reduce((a, b) => a + (b - mu) ** 2, 0) / D;
    const is = 1 / Math.sqrt(variance + eps);
    row.forEach((v, j) => {
      y.push((v - mu) * is * scale[j]! + (bias ? bias[j]! : 0));
    });
    mean.push(mu);
    inv.push(is);
  }
  return { y, mean, inv };
}

test("LayerNormalization axis=-1 with Mean and InvStdDev outputs", () => {
  const x = randTensor([2, 3, 8], 10, 2);
  const scale = randTensor([8], 11);
  const bias = randTensor([8], 12);
  const ref = refLayerNorm(x.toFloat64(), 8, 1e-5, scale.toNumbers(), bias.toNumbers());
  const [y, mean, inv] = runOp("LayerNormalization", [x, scale, bias], { axis: int(-1) });
  assertValues(y!, [2, 3, 8], ref.y);
  assert.equal(mean!.type, "float32");
  assertValues(mean!, [2, 3, 1], ref.mean);
  assertValues(inv!, [2, 3, 1], ref.inv);
});

test("LayerNormalization axis=1 normalises over all trailing axes; epsilon and no bias", () => {
  const x = randTensor([2, 3, 4], 20, 5);
  const scale = randTensor([3, 4], 21);
  const ref = refLayerNorm(x.toFloat64(), 12, 0.1, scale.toNumbers());
  const [y, mean, inv] = runOp("LayerNormalization", [x, scale], { axis: int(1), epsilon: float(0.1) });
  assertValues(y!, [2, 3, 4], ref.y);
  assertValues(mean!, [2, 1, 1], ref.mean);
  assertValues(inv!, [2, 1, 1], ref.inv);
  // Scale [4] broadcasts over the [3, 4] normalised block.
  const s4 = randTensor([4], 22);
  const s4full = [0, 1, 2].flatMap(() => s4.toNumbers());
  const ref4 = refLayerNorm(x.toFloat64(), 12, 1e-5, s4full);
  assertValues(runOp("LayerNormalization", [x, s4], { axis: int(1) })[0]!, [2, 3, 4], ref4.y);
});

test("LayerNormalization hand-computed row", () => {
  // x = [1, 3]: mean 2, variance 1, ε = 0 → y = [-1, 1] · scale + bias.
  const x = new Tensor("float32", [1, 3], [1, 2]);
  const [y] = runOp(
    "LayerNormalization",
    [x, new Tensor("float32", [2, 3], [2]), new Tensor("float32", [0.5, 0.5], [2])],
    { epsilon: float(0) },
  );
  assertValues(y!, [1, 2], [-1.5, 3.5]);
});

test("RMSNormalization (opset 23) divides by the root mean square, no centring", () => {
  const x = randTensor([3, 5], 30, 4);
  const scale = randTensor([5], 31);
  const ref = refLayerNorm(x.toFloat64(), 5, 1e-5, scale.toNumbers(), undefined, true);
  const [y] = runOp("RMSNormalization", [x, scale], {}, 23);
  assertValues(y!, [3, 5], ref.y);
  // Hand computed: [3, 4] → rms = sqrt(12.5).
  const h = runOp(
    "RMSNormalization",
    [new Tensor("float32", [3, 4], [1, 2]), new Tensor("float32", [1, 1], [2])],
    {
      epsilon: float(0),
    },
  )[0]!;
  assertValues(h, [1, 2], [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)]);
  // axis = 0 over a 2-D input normalises the whole tensor.
  const whole = refLayerNorm(x.toFloat64(), 15, 1e-5, new Array(15).fill(2), undefined, true);
  assertValues(
    runOp("RMSNormalization", [x, new Tensor("float32", [2], [1])], { axis: int(0) }, 23)[0]!,
    [3, 5],
    whole.y,
  );
});

test("SkipLayerNormalization with bias, beta and every optional output", () => {
  const x = randTensor([2, 3, 8], 40);
  const skip = randTensor([2, 3, 8], 41);
  const gamma = randTensor([8], 42);
  const beta = randTensor([8], 43);
  const bias = randTensor([8], 44);
  const X = x.toFloat64();
  const S = skip.toFloat64();
  const Bi = bias.toFloat64();
  const sum = Float64Array.from(X, (v, i) => v + S[i]! + Bi[i % 8]!);
  const ref = refLayerNorm(
    Float64Array.from(Float32Array.from(sum)),
    8,
    1e-12,
    gamma.toNumbers(),
    beta.toNumbers(),
  );
  const [y, mean, inv, s] = runOp(
    "SkipLayerNormalization",
    [x, skip, gamma, beta, bias],
    { epsilon: float(1e-12) },
    1,
    "com.microsoft",
  );
  assertValues(y!, [2, 3, 8], ref.y);
  assertValues(mean!, [2, 3, 1], ref.mean);
  assertValues(inv!, [2, 3, 1], ref.inv);
  assertValues(s!, [2, 3, 8], [...sum]);
  // skip [3, 8] broadcasts over the batch.
  const skip2 = randTensor([3, 8], 45);
  const S2 = skip2.toFloat64();
  const sum2 = Float64Array.from(X, (v, i) => v + S2[i % 24]!);
  const ref2 = refLayerNorm(sum2, 8, 1e-12, gamma.toNumbers());
  const [y2] = runOp("SkipLayerNormalization", [x, skip2, gamma], {}, 1, "com.microsoft");
  assertValues(y2!, [2, 3, 8], ref2.y);
  assert.throws(
    () => runOp("SkipLayerNormalization", [x, randTensor([2, 8], 46), gamma], {}, 1, "com.microsoft"),
    /skip/,
  );
});

// ---- Reductions -----------------------------------------------------------------------------------------

test("ReduceSum/Mean/Max with keepdims, axes as attribute (opset 13) and as input (opset 18)", () => {
  // x[i][j][k] = 100i + 10j + k on [2, 3, 4].
  const vals: number[] = [];
  for (let i = 0; i < 2; i++)
    for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) vals.push(100 * i + 10 * j + k);
  const x = new Tensor("float32", vals, [2, 3, 4]);
  const axes = new Tensor("int64", [1], [1]);
  // Sum over j: 3·(100i + k) + 30.
  const sumJ = [0, 1].flatMap((i) => [0, 1, 2, 3].map((k) => 3 * (100 * i + k) + 30));
  assertValues(runOp("ReduceSum", [x, axes], {}, 13)[0]!, [2, 1, 4], sumJ);
  assertValues(runOp("ReduceSum", [x, axes], { keepdims: int(0) }, 13)[0]!, [2, 4], sumJ);
  assertValues(runOp("ReduceSum", [x], { axes: ints([1]) }, 11)[0]!, [2, 1, 4], sumJ);
  // Mean over axes [0, 2]: mean of 100i + 10j + k = 50 + 10j + 1.5.
  const meanIK = [0, 1, 2].map((j) => 51.5 + 10 * j);
  assertValues(runOp("ReduceMean", [x], { axes: ints([0, -1]), keepdims: int(0) }, 13)[0]!, [3], meanIK);
  assertValues(
    runOp("ReduceMean", [x, new Tensor("int64", [0, 2], [2])], { keepdims: int(1) }, 18)[0]!,
    [1, 3, 1],
    meanIK,
  );
  // Max over the last axis.
  const maxK = [0, 1].flatMap((i) => [0, 1, 2].map((j) => 100 * i + 10 * j + 3));
  assertValues(runOp("ReduceMax", [x], { axes: ints([2]) }, 13)[0]!, [2, 3, 1], maxK);
  assertValues(
    runOp("ReduceMax", [x, new Tensor("int64", [-1], [1])], { keepdims: int(0) }, 18)[0]!,
    [2, 3],
    maxK,
  );
  // In opset 18 an axes attribute is not a thing: without the input every axis is reduced.
  assertValues(runOp("ReduceMax", [x], { keepdims: int(0) }, 18)[0]!, [], [123]);
});

test("Reductions: empty axes reduce everything unless noop_with_empty_axes; int64 stays int64", () => {
  const x = new Tensor("float32", [1, 2, 3, 4, 5, 6], [2, 3]);
  assertValues(runOp("ReduceSum", [x], {}, 13)[0]!, [1, 1], [21]);
  assertValues(runOp("ReduceSum", [x, new Tensor("int64", [], [0])], { keepdims: int(0) }, 13)[0]!, [], [21]);
  const noop = runOp(
    "ReduceSum",
    [x, new Tensor("int64", [], [0])],
    { noop_with_empty_axes: int(1) },
    13,
  )[0]!;
  assertValues(noop, [2, 3], [1, 2, 3, 4, 5, 6]);
  assertValues(runOp("ReduceMean", [x], {}, 17)[0]!, [1, 1], [3.5]);
  const xi = new Tensor("int64", [5, -7, 2, 9], [2, 2]);
  const s = runOp("ReduceSum", [xi], { axes: ints([0]), keepdims: int(0) }, 11)[0]!;
  assert.equal(s.type, "int64");
  assert.deepEqual(s.toNumbers(), [7, 2]);
  assert.deepEqual(runOp("ReduceMax", [xi], { axes: ints([1]) }, 13)[0]!.toNumbers(), [5, 9]);
  assert.throws(() => runOp("ReduceSum", [x], { axes: ints([2]) }, 11), /out of range/);
});

test("Reductions infer shapes with symbolic dims", () => {
  const node: Node = {
    name: "r",
    opType: "ReduceMean",
    domain: "",
    inputs: ["x"],
    outputs: ["y"],
    attrs: { axes: ints([-1]) },
  };
  const t = getOp(node).inferTypes({
    node,
    opset: 17,
    inputs: [{ dtype: "float32", shape: ["batch", "seq", 64] }],
    constant: () => undefined,
  });
  assert.deepEqual(t, [{ dtype: "float32", shape: ["batch", "seq", 1] }]);
});

test("Normalization ops infer output and statistics shapes with symbolic dims", () => {
  const infer = (
    opType: string,
    domain: string,
    attrs: Record<string, Attribute>,
    shape: (number | string)[],
  ) => {
    const n: Node = { name: "n", opType, domain, inputs: ["x"], outputs: ["y"], attrs };
    return getOp(n).inferTypes({
      node: n,
      opset: 17,
      inputs: [{ dtype: "float16", shape }],
      constant: () => undefined,
    });
  };
  const ln = infer("LayerNormalization", "", { axis: int(-1) }, ["batch", "seq", 64]);
  assert.deepEqual(ln, [
    { dtype: "float16", shape: ["batch", "seq", 64] },
    { dtype: "float32", shape: ["batch", "seq", 1] },
    { dtype: "float32", shape: ["batch", "seq", 1] },
  ]);
  const sln = infer("SkipLayerNormalization", "com.microsoft", {}, ["batch", "seq", 64]);
  assert.deepEqual(sln[1], { dtype: "float32", shape: ["batch", "seq", 1] });
  assert.deepEqual(sln[3], { dtype: "float16", shape: ["batch", "seq", 64] });
  assert.deepEqual(infer("Softmax", "", {}, ["b", 4, "s", "s"]), [
    { dtype: "float16", shape: ["b", 4, "s", "s"] },
  ]);
});

// ---- CumSum ---------------------------------------------------------------------------------------------

test("CumSum: plain, exclusive, reverse and both, on a chosen axis", () => {
  const x = new Tensor("float32", [1, 2, 3, 4, 5, 6], [2, 3]);
  const axis1 = new Tensor("int64", [1], []);
  assertValues(runOp("CumSum", [x, axis1])[0]!, [2, 3], [1, 3, 6, 4, 9, 15]);
  assertValues(runOp("CumSum", [x, axis1], { exclusive: int(1) })[0]!, [2, 3], [0, 1, 3, 0, 4, 9]);
  assertValues(runOp("CumSum", [x, axis1], { reverse: int(1) })[0]!, [2, 3], [6, 5, 3, 15, 11, 6]);
  assertValues(
    runOp("CumSum", [x, axis1], { exclusive: int(1), reverse: int(1) })[0]!,
    [2, 3],
    [5, 3, 0, 11, 6, 0],
  );
  assertValues(runOp("CumSum", [x, new Tensor("int32", [0], [])])[0]!, [2, 3], [1, 2, 3, 5, 7, 9]);
  // Position ids from an attention mask: int64 in, int64 out.
  const mask = new Tensor("int64", [1, 1, 1, 0], [1, 4]);
  const pos = runOp("CumSum", [mask, new Tensor("int64", [-1], [])])[0]!;
  assert.equal(pos.type, "int64");
  assert.deepEqual(pos.toNumbers(), [1, 2, 3, 3]);
});

// ---- RotaryEmbedding ------------------------------------------------------------------------------------

/**
 * Float64 transcription of the ONNX opset-23 reference (onnx/reference/ops/op_rotary_embedding.py):
 * works on [b, s, h, d], rotates the first rotaryDim values of every head.
 */
function refRotary(
  x: Tensor,
  cosCache: Tensor,
  sinCache: Tensor,
  positionIds: Tensor | undefined,
  o: { interleaved: boolean; rotaryDim: number; numHeads: number },
): number[] {
  const X = x.toFloat64();
  const cosV = cosCache.toFloat64();
  const sinV = sinCache.toFloat64();
  const is4d = x.rank === 4;
  const [B, S] = is4d ? [x.dims[0]!, x.dims[2]!] : [x.dims[0]!, x.dims[1]!];
  const H = is4d ? x.dims[1]! : o.numHeads;
  const D = is4d ? x.dims[3]! : x.dims[2]! / o.numHeads;
  const at = (b: number, s: number, h: number, d: number) =>
    is4d ? ((b * H + h) * S + s) * D + d : ((b * S + s) * H + h) * D + d;
  const rd = o.rotaryDim || D;
  const half = rd / 2;
  const width = cosCache.dims[cosCache.rank - 1]!;
  const out = [...X];
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      const row = positionIds ? positionIds.getNumber(b * S + s) : b * S + s;
      for (let h = 0; h < H; h++) {
        const xr = Array.from({ length: rd }, (_, d) => X[at(b, s, h, d)]!);
        const x1 = o.interleaved ? xr.filter((_, i) => i % 2 === 0) : xr.slice(0, half);
        const x2 = o.interleaved ? xr.filter((_, i) => i % 2 === 1) : xr.slice(half);
        const real = x1.map((v, j) => cosV[row * width + j]! * v - sinV[row * width + j]! * x2[j]!);
        const imag = x1.map((v, j) => sinV[row * width + j]! * v + cosV[row * width + j]! * x2[j]!);
        const rotated = o.interleaved ? real.flatMap((r, j) => [r, imag[j]!]) : [...real, ...imag];
        rotated.forEach((v, d) => {
          out[at(b, s, h, d)] = v;
        });
      }
    }
  }
  return out;
}

function caches(rows: number, width: number, extraDims: number[] = []) {
  const dims = [...extraDims, rows, width];
  const theta = Array.from({ length: size(dims) }, (_, i) => 0.37 * (i + 1));
  return {
    cos: new Tensor("float32", theta.map(Math.cos), dims),
    sin: new Tensor("float32", theta.map(Math.sin), dims),
  };
}

test("RotaryEmbedding hand-computed: a 90° rotation of one pair", () => {
  // head_size 2, one token: (x1, x2) = (1, 2), cos 0, sin 1 → (-2, 1).
  const x = new Tensor("float32", [1, 2], [1, 1, 1, 2]);
  const cos = new Tensor("float32", [0], [1, 1]);
  const sin = new Tensor("float32", [1], [1, 1]);
  const pos = new Tensor("int64", [0], [1, 1]);
  assertValues(runOp("RotaryEmbedding", [x, cos, sin, pos], {}, 23)[0]!, [1, 1, 1, 2], [-2, 1]);
});

test("RotaryEmbedding 4-D and 3-D, interleaved or not, partial rotary dim, with and without position_ids", () => {
  const [B, H, S, D] = [2, 3, 4, 8];
  const positionIds = new Tensor("int64", [3, 0, 5, 1, 2, 2, 6, 4], [B, S]);
  const cache2d = caches(7, D / 2);
  const cache3d = caches(S, D / 2, [B]);
  let seed = 800;
  for (const interleaved of [false, true]) {
    for (const rotaryDim of [0, 4]) {
      for (const withPositions of [true, false]) {
        const { cos, sin } = withPositions ? cache2d : cache3d;
        const pos = withPositions ? positionIds : undefined;
        const o = { interleaved, rotaryDim, numHeads: H };
        const attrs: Record<string, Attribute> = {
          interleaved: int(interleaved ? 1 : 0),
          rotary_embedding_dim: int(rotaryDim),
        };
        const x4 = randTensor([B, H, S, D], seed++);
        assertValues(
          runOp("RotaryEmbedding", [x4, cos, sin, pos], attrs, 23)[0]!,
          [B, H, S, D],
          refRotary(x4, cos, sin, pos, o),
        );
        const x3 = randTensor([B, S, H * D], seed++);
        assertValues(
          runOp("RotaryEmbedding", [x3, cos, sin, pos], { ...attrs, num_heads: int(H) }, 23)[0]!,
          [B, S, H * D],
          refRotary(x3, cos, sin, pos, o),
        );
      }
    }
  }
  assert.throws(
    () => runOp("RotaryEmbedding", [randTensor([B, S, H * D], 1), cache3d.cos, cache3d.sin], {}, 23),
    /num_heads/,
  );
});

// ---- cross-check against onnxruntime -------------------------------------------------------------------

async function ortRun(b: GraphBuilder, feeds: Record<string, Tensor>): Promise<ort.Tensor[]> {
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(b.graph)));
  const ortFeeds = Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data as Float32Array, [...t.dims])]),
  );
  const result = await session.run(ortFeeds);
  return session.outputNames.map((n) => result[n]!);
}

test("RotaryEmbedding and SkipLayerNormalization agree with onnxruntime", async () => {
  const [B, S, H, D] = [2, 3, 2, 8];
  const x = randTensor([B, S, H * D], 900);
  // onnxruntime wants cache rows exactly rotary_dim/2 wide (the spec allows wider and slices).
  const { cos, sin } = caches(6, 2);
  const pos = new Tensor("int64", [0, 1, 2, 5, 4, 3], [B, S]);
  for (const interleaved of [0, 1]) {
    const b = new GraphBuilder({ opset: 23 });
    b.input("x", "float32", [B, S, H * D]);
    b.input("pos", "int64", [B, S]);
    const y = b.op("RotaryEmbedding", ["x", b.init(cos), b.init(sin), "pos"], {
      interleaved,
      num_heads: H,
      rotary_embedding_dim: 4,
    });
    b.output(y);
    const [want] = await ortRun(b, { x, pos });
    const attrs = { interleaved: int(interleaved), num_heads: int(H), rotary_embedding_dim: int(4) };
    const got = runOp("RotaryEmbedding", [x, cos, sin, pos], attrs, 23)[0]!;
    assertValues(got, [...want!.dims], want!.data as Float32Array, 1e-6);
  }

  const skip = randTensor([B, S, 16], 901);
  const gamma = randTensor([16], 902);
  const beta = randTensor([16], 903);
  const bias = randTensor([16], 904);
  const b = new GraphBuilder({ opset: 17, opsets: { "com.microsoft": 1 } });
  b.input("x", "float32", [B, S, 16]);
  b.input("skip", "float32", [B, S, 16]);
  const outs = b.opN(
    "SkipLayerNormalization",
    ["x", "skip", b.init(gamma), b.init(beta), b.init(bias)],
    { epsilon: 1e-5 },
    { domain: "com.microsoft", outputs: ["y", "mean", "inv_std", "sum"] },
  );
  for (const o of outs) b.output(o);
  const [wantY, wantMean, wantInv, wantSum] = await ortRun(b, { x, skip });
  const got = runOp(
    "SkipLayerNormalization",
    [x, skip, gamma, beta, bias],
    { epsilon: float(1e-5) },
    1,
    "com.microsoft",
  );
  assertValues(got[0]!, [...wantY!.dims], wantY!.data as Float32Array, 1e-5);
  assertValues(got[3]!, [...wantSum!.dims], wantSum!.data as Float32Array, 1e-6);
  assertValues(got[1]!, [...wantMean!.dims], wantMean!.data as Float32Array, 1e-6);
  assertValues(got[2]!, [...wantInv!.dims], wantInv!.data as Float32Array, 1e-5);
});
