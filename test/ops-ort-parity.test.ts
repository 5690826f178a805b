// The ops added for ONNX coverage, each run through mhafuse and onnxruntime-node on the same single-node graph
// (GraphBuilder → ONNX bytes → both engines) for their attributes and opsets. Cases are data: op, opset,
// attributes, inputs; every output must match onnxruntime within 1e-5 (relative for large values), exactly for
// integers.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { runGraph } from "../src/engine/executor.js";
import { OpError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { DType } from "../src/ir/dtype.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { randomTensor } from "./qkv-helpers.js";

type Attr = number | string | number[];
interface Case {
  op: string;
  opset: number;
  attrs?: Record<string, Attr>;
  inputs: (Tensor | undefined)[];
  /** Inputs that become initializers (constant), e.g. shapes and axes. */
  constant?: number[];
  /** How many outputs, or which (true = requested; false = left unnamed). */
  outputs?: number | boolean[];
  domain?: string;
}

const f32 = (dims: number[], seed: number, scale = 2) => randomTensor("float32", dims, seed, scale);
const i64 = (v: number[], dims = [v.length]) => new Tensor("int64", v, dims);
const int = (t: DType, v: number[], dims: number[]) => new Tensor(t, v, dims);

const unary = (op: string, opset: number, attrs: Record<string, Attr> = {}, scale = 2): Case => ({
  op,
  opset,
  attrs,
  inputs: [f32([3, 4, 5], op.length * 7 + opset, scale)],
});

const CASES: Case[] = [
  ...["Acos", "Asin", "Atanh"].map((op) => unary(op, 9, {}, 0.9)),
  ...["Atan", "Tan", "Asinh", "Cosh", "Sinh", "Softplus", "Softsign"].map((op) => unary(op, 13)),
  unary("Acosh", 13, {}, 0.5),
  unary("Mish", 18, {}, 4),
  unary("Elu", 13, { alpha: 0.7 }),
  unary("Selu", 13, { alpha: 1.5, gamma: 2.5 }),
  unary("Celu", 13, { alpha: 0.5 }),
  unary("LeakyRelu", 13, { alpha: 0.2 }),
  unary("LeakyRelu", 6),
  unary("HardSigmoid", 13, { alpha: 0.3, beta: 0.4 }),
  unary("HardSwish", 14, {}, 8),
  unary("ThresholdedRelu", 13, { alpha: 0.5 }),
  unary("Shrink", 13, { lambd: 0.6, bias: 0.2 }),
  { op: "PRelu", opset: 13, inputs: [f32([2, 3, 4], 1), f32([3, 1], 2)] },
  { op: "PRelu", opset: 9, inputs: [f32([2, 3, 4], 3), f32([4], 4)] },
  ...[
    ["ArgMax", { axis: 1, keepdims: 0 }],
    ["ArgMax", { axis: -1, select_last_index: 1 }],
    ["ArgMin", { axis: 0 }],
    ["ArgMin", { axis: 2, keepdims: 0, select_last_index: 1 }],
  ].map(([op, attrs]) => ({
    op: op as string,
    opset: 13,
    attrs: attrs as Record<string, Attr>,
    inputs: [new Tensor("float32", [1, 3, 3, 2, 0, 3, 1, 1, 5, 2, 2, 0, 4, 4, 1, 0, 2, 3], [2, 3, 3])],
  })),
  {
    op: "TopK",
    opset: 13,
    attrs: { axis: 1 },
    inputs: [f32([3, 6], 5), i64([3])],
    constant: [1],
    outputs: 2,
  },
  {
    op: "TopK",
    opset: 13,
    attrs: { largest: 0 },
    inputs: [f32([2, 5], 6), i64([2])],
    constant: [1],
    outputs: 2,
  },
  { op: "TopK", opset: 9, attrs: { k: 2, axis: 0 }, inputs: [f32([4, 3], 7)], outputs: 2 },
  ...["LogSoftmax", "Hardmax"].flatMap((op): Case[] => [
    { op, opset: 13, attrs: { axis: 1 }, inputs: [f32([2, 3, 4], 8)] },
    { op, opset: 11, attrs: { axis: 1 }, inputs: [f32([2, 3, 4], 9)] },
  ]),
  ...[
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
  ].flatMap((op): Case[] => [
    { op, opset: 13, attrs: { axes: [1], keepdims: 0 }, inputs: [f32([2, 3, 4], 10, 1)].map(abs) },
    {
      op,
      opset: 18,
      attrs: { keepdims: 1 },
      inputs: [f32([2, 3, 4], 11, 1), i64([0, 2])].map(abs),
      constant: [1],
    },
  ]),
  {
    op: "NegativeLogLikelihoodLoss",
    opset: 13,
    attrs: { reduction: "mean", ignore_index: 1 },
    inputs: [f32([3, 4, 2], 12), i64([0, 1, 3, 2, 1, 0], [3, 2]), abs(f32([4], 13, 1))],
  },
  {
    op: "SoftmaxCrossEntropyLoss",
    opset: 13,
    attrs: { reduction: "none" },
    inputs: [f32([3, 5], 14), i64([4, 0, 2])],
    outputs: 2,
  },
  {
    op: "MaxPool",
    opset: 12,
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    inputs: [f32([1, 2, 7, 6], 15)],
    outputs: 2,
  },
  {
    op: "MaxPool",
    opset: 12,
    attrs: { kernel_shape: [2, 2], ceil_mode: 1, dilations: [2, 1] },
    inputs: [f32([1, 1, 7, 6], 16)],
  },
  {
    op: "AveragePool",
    opset: 13,
    attrs: { kernel_shape: [3, 2], pads: [1, 0, 1, 1], count_include_pad: 1 },
    inputs: [f32([2, 1, 5, 4], 17)],
  },
  {
    op: "AveragePool",
    opset: 13,
    attrs: { kernel_shape: [3], auto_pad: "SAME_UPPER", strides: [2] },
    inputs: [f32([1, 3, 9], 18)],
  },
  { op: "GlobalAveragePool", opset: 13, inputs: [f32([2, 3, 4, 5], 19)] },
  { op: "GlobalMaxPool", opset: 13, inputs: [f32([2, 3, 4, 5], 20)] },
  {
    op: "Resize",
    opset: 13,
    attrs: { mode: "linear" },
    inputs: [f32([1, 2, 4, 4], 21), undefined, new Tensor("float32", [1, 1, 1.5, 0.75], [4])],
    constant: [2],
  },
  {
    op: "Resize",
    opset: 13,
    attrs: { mode: "cubic", coordinate_transformation_mode: "align_corners" },
    inputs: [f32([1, 1, 4, 5], 22), undefined, undefined, i64([1, 1, 7, 3])],
    constant: [3],
  },
  {
    op: "Resize",
    opset: 13,
    attrs: { mode: "nearest", nearest_mode: "floor", coordinate_transformation_mode: "asymmetric" },
    inputs: [f32([1, 1, 3, 3], 23), undefined, new Tensor("float32", [1, 1, 2, 2.5], [4])],
    constant: [2],
  },
  {
    op: "ConvTranspose",
    opset: 13,
    attrs: { strides: [2, 2], pads: [1, 0, 0, 1], output_padding: [1, 0] },
    inputs: [f32([1, 2, 3, 3], 24), f32([2, 3, 3, 2], 25), f32([3], 26)],
  },
  {
    op: "ConvTranspose",
    opset: 13,
    attrs: { group: 2, dilations: [2] },
    inputs: [f32([2, 4, 5], 27), f32([4, 1, 3], 28)],
  },
  {
    op: "BatchNormalization",
    opset: 15,
    inputs: [f32([2, 3, 4], 29), f32([3], 30), f32([3], 31), f32([3], 32), abs(f32([3], 33, 1))],
  },
  {
    op: "InstanceNormalization",
    opset: 13,
    attrs: { epsilon: 0.01 },
    inputs: [f32([2, 3, 4, 2], 34), f32([3], 35), f32([3], 36)],
  },
  {
    op: "LRN",
    opset: 13,
    attrs: { size: 3, alpha: 0.01, beta: 0.6, bias: 1.5 },
    inputs: [f32([1, 5, 3, 2], 37)],
  },
  { op: "MeanVarianceNormalization", opset: 13, inputs: [f32([2, 3, 4, 2], 38)] },
  { op: "DepthToSpace", opset: 13, attrs: { blocksize: 2, mode: "CRD" }, inputs: [f32([1, 8, 2, 3], 39)] },
  { op: "DepthToSpace", opset: 13, attrs: { blocksize: 2 }, inputs: [f32([1, 8, 2, 3], 40)] },
  { op: "SpaceToDepth", opset: 13, attrs: { blocksize: 2 }, inputs: [f32([1, 2, 4, 6], 41)] },
  {
    op: "Compress",
    opset: 11,
    attrs: { axis: 1 },
    inputs: [f32([2, 4], 42), int("bool", [1, 0, 1, 1], [4])],
  },
  {
    op: "Pad",
    opset: 13,
    attrs: { mode: "reflect" },
    inputs: [f32([3, 4], 43), i64([1, 2, 2, 1])],
    constant: [1],
  },
  {
    op: "Pad",
    opset: 13,
    attrs: { mode: "edge" },
    inputs: [f32([3, 4], 44), i64([0, 3, 1, 0])],
    constant: [1],
  },
  {
    op: "Pad",
    opset: 13,
    inputs: [f32([3, 4], 45), i64([1, 1, 0, 2]), new Tensor("float32", [2.5], [])],
    constant: [1, 2],
  },
  {
    op: "Pad",
    opset: 19,
    attrs: { mode: "wrap" },
    inputs: [f32([3, 4], 46), i64([2, 1, 1, 3])],
    constant: [1],
  },
  {
    op: "ReverseSequence",
    opset: 13,
    attrs: { batch_axis: 0, time_axis: 1 },
    inputs: [f32([3, 4, 2], 47), i64([4, 1, 2])],
  },
  {
    op: "ScatterElements",
    opset: 16,
    attrs: { axis: 1, reduction: "add" },
    inputs: [f32([3, 4], 48), i64([0, 3, 1, 1, 2, 0], [3, 2]), f32([3, 2], 49)],
  },
  {
    op: "OneHot",
    opset: 13,
    attrs: { axis: 0 },
    inputs: [i64([1, 4, -1, 0], [2, 2]), i64([5], []), new Tensor("float32", [0.5, 3], [2])],
  },
  { op: "EyeLike", opset: 13, attrs: { k: 1 }, inputs: [f32([3, 5], 50)] },
  { op: "NonZero", opset: 13, inputs: [new Tensor("float32", [0, 1, 0, 2, 3, 0], [2, 3])] },
  {
    op: "QuantizeLinear",
    opset: 13,
    attrs: { axis: 1 },
    inputs: [f32([2, 3], 51, 3), new Tensor("float32", [0.02, 0.05, 0.1], [3]), int("int8", [1, -2, 0], [3])],
  },
  {
    op: "DequantizeLinear",
    opset: 13,
    inputs: [int("uint8", [0, 10, 128, 255], [4]), new Tensor("float32", [0.1], []), int("uint8", [128], [])],
  },
  { op: "DynamicQuantizeLinear", opset: 13, inputs: [f32([3, 4], 52, 5)], outputs: 3 },
  {
    op: "MatMulInteger",
    opset: 13,
    inputs: [
      int("uint8", [3, 200, 7, 9, 10, 1], [2, 3]),
      int("uint8", [1, 2, 3, 250, 5, 6], [3, 2]),
      int("uint8", [5], []),
      int("uint8", [3], []),
    ],
  },
  { op: "Det", opset: 13, inputs: [f32([2, 3, 3], 53)] },
  {
    op: "Unique",
    opset: 13,
    attrs: { sorted: 1 },
    inputs: [new Tensor("float32", [2, 1, 1, 3, 4, 3], [6])],
    outputs: 4,
  },
  {
    op: "NonMaxSuppression",
    opset: 13,
    attrs: { center_point_box: 0 },
    inputs: [
      new Tensor("float32", [0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, -0.1, 1, 0.9, 0, 10, 1, 11], [1, 4, 4]),
      new Tensor("float32", [0.9, 0.75, 0.6, 0.95], [1, 1, 4]),
      i64([3]),
      new Tensor("float32", [0.5], [1]),
      new Tensor("float32", [0.0], [1]),
    ],
    constant: [2, 3, 4],
  },
  { op: "HannWindow", opset: 17, inputs: [i64([10], [])], constant: [0] },
  // com.microsoft decoder ops (onnxruntime's transformer optimizer output for Llama-family models).
  gqa("prompt, GQA 4:2", { num_heads: 4, kv_num_heads: 2 }, { B: 2, S: 4, P: 0, seqlens: [3, 3], total: 4 }),
  gqa("decode step", { num_heads: 4, kv_num_heads: 2 }, { B: 2, S: 1, P: 5, seqlens: [5, 5], total: 6 }),
  gqa(
    "decode, ragged past",
    { num_heads: 4, kv_num_heads: 1 },
    { B: 2, S: 1, P: 5, seqlens: [3, 5], total: 6 },
  ),
  gqa("two new tokens", { num_heads: 2, kv_num_heads: 2 }, { B: 1, S: 2, P: 3, seqlens: [4], total: 5 }),
  gqa(
    "local window",
    { num_heads: 4, kv_num_heads: 2, local_window_size: 2 },
    { B: 1, S: 5, P: 0, seqlens: [4], total: 5 },
  ),
  gqa(
    "softcap",
    { num_heads: 4, kv_num_heads: 2, softcap: 2.5 },
    { B: 1, S: 5, P: 0, seqlens: [4], total: 5 },
  ),
  gqa("scale", { num_heads: 4, kv_num_heads: 2, scale: 0.3 }, { B: 1, S: 5, P: 0, seqlens: [4], total: 5 }),
  gqa(
    "packed QKV, rotary",
    { num_heads: 4, kv_num_heads: 2, do_rotary: 1 },
    { B: 2, S: 1, P: 3, seqlens: [3, 3], total: 4, packed: true, rotary: true },
  ),
  gqa(
    "rotary interleaved prompt",
    { num_heads: 2, kv_num_heads: 1, do_rotary: 1, rotary_interleaved: 1 },
    { B: 1, S: 3, P: 0, seqlens: [2], total: 3, rotary: true },
  ),
  {
    op: "RotaryEmbedding",
    domain: "com.microsoft",
    opset: 17,
    attrs: { num_heads: 2 },
    inputs: [f32([2, 3, 16], 60), i64([0, 1, 2, 4, 5, 6], [2, 3]), f32([8, 4], 61, 1), f32([8, 4], 62, 1)],
  },
  {
    op: "RotaryEmbedding",
    domain: "com.microsoft",
    opset: 17,
    attrs: { num_heads: 2, interleaved: 1 },
    inputs: [f32([1, 3, 16], 63), i64([2], [1]), f32([8, 4], 64, 1), f32([8, 4], 65, 1)],
  },
  {
    op: "SimplifiedLayerNormalization",
    opset: 17,
    attrs: { epsilon: 1e-3 },
    inputs: [f32([2, 3, 8], 66), f32([8], 67)],
  },
  {
    op: "SkipSimplifiedLayerNormalization",
    domain: "com.microsoft",
    opset: 17,
    inputs: [f32([2, 3, 8], 68), f32([2, 3, 8], 69), f32([8], 70), f32([8], 71)],
    outputs: [true, false, false, true],
  },
  { op: "BlackmanWindow", opset: 17, attrs: { periodic: 0 }, inputs: [i64([7], [])], constant: [0] },
];

/** A com.microsoft GroupQueryAttention case: BSD query/key/value, BNSH past, int32 seqlens_k and total length. */
function gqa(
  _label: string,
  attrs: Record<string, Attr>,
  o: {
    B: number;
    S: number;
    P: number;
    seqlens: number[];
    total: number;
    packed?: boolean;
    rotary?: boolean;
  },
): Case {
  const N = attrs.num_heads as number;
  const Nkv = attrs.kv_num_heads as number;
  const H = o.rotary ? 16 : 8; // onnxruntime's rotary kernels need head sizes that are multiples of 16
  const seed = o.B * 100 + o.S * 10 + o.P + N;
  const none = undefined;
  const q = o.packed ? f32([o.B, o.S, (N + 2 * Nkv) * H], seed) : f32([o.B, o.S, N * H], seed);
  return {
    op: "GroupQueryAttention",
    domain: "com.microsoft",
    opset: 17,
    attrs,
    inputs: [
      q,
      o.packed ? none : f32([o.B, o.S, Nkv * H], seed + 1),
      o.packed ? none : f32([o.B, o.S, Nkv * H], seed + 2),
      o.P ? f32([o.B, Nkv, o.P, H], seed + 3) : none,
      o.P ? f32([o.B, Nkv, o.P, H], seed + 4) : none,
      int("int32", o.seqlens, [o.B]),
      int("int32", [o.total], [1]),
      o.rotary ? f32([16, H / 2], seed + 5, 1) : none,
      o.rotary ? f32([16, H / 2], seed + 6, 1) : none,
    ],
    outputs: 3,
  };
}

function abs(t: Tensor): Tensor {
  return t.type === "float32"
    ? new Tensor("float32", (t.data as Float32Array).map(Math.abs), [...t.dims])
    : t;
}

function graphFor(c: Case) {
  const b = new GraphBuilder({ opset: c.opset, opsets: c.domain ? { [c.domain]: 1 } : {} });
  const names = c.inputs.map((t, i) => {
    if (!t) return "";
    if (c.constant?.includes(i)) return b.init(t, `in${i}`);
    return b.input(`in${i}`, t.type, [...t.dims]);
  });
  const wanted = Array.isArray(c.outputs) ? c.outputs : Array.from({ length: c.outputs ?? 1 }, () => true);
  const outs = wanted.map((w, i) => (w ? `out${i}` : ""));
  b.opN(c.op, names, c.attrs ?? {}, { outputs: outs, domain: c.domain });
  for (const o of outs) if (o) b.output(o);
  const feeds = Object.fromEntries(
    c.inputs.flatMap((t, i) => (t && !c.constant?.includes(i) ? [[`in${i}`, t]] : [])),
  );
  return { graph: b.build(), feeds, outs };
}

function close(a: number, b: number): boolean {
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  return Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
}

for (const c of CASES) {
  const label = `${c.op} (opset ${c.opset}${c.attrs ? `, ${JSON.stringify(c.attrs)}` : ""})`;
  test(`${label} matches onnxruntime-node`, async () => {
    const { graph, feeds, outs } = graphFor(c);
    const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)));
    const ortFeeds = Object.fromEntries(
      Object.entries(feeds).map(([k, t]) => [
        k,
        new ort.Tensor(t.type as ort.Tensor.Type, t.data as Float32Array, [...t.dims]),
      ]),
    );
    const want = await session.run(ortFeeds);
    const got = runGraph(graph, feeds);
    for (const name of outs.filter(Boolean)) {
      const g = got.get(name)!;
      const w = want[name]!;
      assert.deepEqual([...g.dims], [...w.dims].map(Number), `${name} shape`);
      assert.equal(
        g.type,
        w.type === "float32" || w.type === "int64" || w.type === "bool" ? w.type : g.type,
        `${name} dtype`,
      );
      const gv = g.toNumbers();
      const wv = Array.from(w.data as ArrayLike<number | bigint>, Number);
      assert.ok(gv.length > 0 || wv.length === 0);
      assert.equal(gv.length, wv.length);
      gv.forEach((v, i) => {
        assert.ok(close(v, wv[i]!), `${name}[${i}]: ${v} vs onnxruntime ${wv[i]}`);
      });
    }
  });
}

test("GroupQueryAttention: a past longer than past_key holds is an OpError (the cache would be read past its end)", () => {
  // seqlens_k = 9 with S = 1 means 9 past rows; past_key holds 4.
  const c = gqa("past > P", { num_heads: 2, kv_num_heads: 1 }, { B: 1, S: 1, P: 4, seqlens: [9], total: 10 });
  const { graph, feeds } = graphFor(c);
  assert.throws(
    () => runGraph(graph, feeds),
    (e: unknown) => e instanceof OpError && /past 9, past_key holds 4/.test(e.message),
  );
});
