import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { floatAttr, GraphBuilder } from "../src/ir/builder.js";
import type { Model } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import {
  type JsonTensor,
  loadModelSync,
  modelFromGraph,
  saveModel,
  saveModelFile,
  tensorFromJson,
} from "../src/onnx/index.js";
import { onnx } from "../src/onnx/proto.js";
import { FIXTURE_MODELS, FIXTURES as SHARED_FIXTURES } from "./support/fixtures.js";

/** Repeated fields typed as the message classes that decode() really returns. */
const nodesOf = (g: onnx.IGraphProto) => g.node as onnx.NodeProto[];
const initializersOf = (g: onnx.IGraphProto) => g.initializer as onnx.TensorProto[];
const attributesOf = (n: onnx.INodeProto) => n.attribute as onnx.AttributeProto[];
const FIXTURES = `${SHARED_FIXTURES}onnx/`;
const MODELS = FIXTURE_MODELS;

/** The parts of a Model that a save/load round trip must preserve (baseDir is where it was loaded from). */
function comparable(model: Model) {
  const { baseDir: _baseDir, ...rest } = model;
  return rest;
}

for (const name of MODELS) {
  test(`${name}: import → export → import is the same graph, and onnxruntime runs the export`, async () => {
    const original = loadModelSync(path.join(FIXTURES, `${name}.onnx`));
    const bytes = saveModel(original);
    const again = loadModelSync(bytes);
    // Nodes (names, attrs incl. tensors), initializer bytes, inputs/outputs, valueInfo, opsets, metadata.
    assert.deepStrictEqual(comparable(again), comparable(original));

    const io = JSON.parse(readFileSync(path.join(FIXTURES, `${name}.io.json`), "utf8"));
    const first = io.cases[0] as { inputs: Record<string, JsonTensor>; outputs: Record<string, JsonTensor> };
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(first.inputs)) {
      const t = tensorFromJson(v);
      feeds[k] = new ort.Tensor(t.type as "int64", t.data as BigInt64Array, [...t.dims]);
    }
    const session = await ort.InferenceSession.create(bytes);
    const results = await session.run(feeds);
    for (const [k, v] of Object.entries(first.outputs)) {
      const expected = tensorFromJson(v);
      const got = results[k]!;
      assert.deepEqual([...got.dims], [...expected.dims], k);
      let maxDiff = 0;
      const data = got.data as Float32Array;
      for (let i = 0; i < expected.size; i++)
        maxDiff = Math.max(maxDiff, Math.abs(data[i]! - expected.getNumber(i)));
      assert.ok(maxDiff <= 1e-5, `${k}: max |diff| ${maxDiff}`);
    }
  });
}

test("a GraphBuilder graph exported with modelFromGraph runs in onnxruntime and matches hand math", async () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", ["batch", 3]);
  const w = b.init(new Tensor("float32", [1, 0, -1, 2, 0.5, 1, 0, -2, 0, 1, 3, 0.25], [3, 4]), "w");
  // Bias from a Constant node's tensor attribute (not an initializer).
  const bias = b.op("Constant", [], { value: new Tensor("float32", [0.1, -0.2, 0.3, 0], [4]) });
  const logits = b.op("Add", [b.op("MatMul", [x, w]), bias]);
  const probs = b.op("Softmax", [logits], { axis: -1 });
  const transposed = b.op("Transpose", [probs], { perm: [1, 0] }, { name: "transpose" });
  // Gemm: alpha is a float attribute with an integral value (floatAttr), transB an int.
  const w2 = b.init(new Tensor("float32", [1, 2, 3, -1, 0, 1], [2, 3]), "w2");
  const gemm = b.op("Gemm", [x, w2], { alpha: floatAttr(2), beta: 0.5, transB: 1 });
  b.output(transposed, "float32", [4, "batch"]);
  b.output(gemm); // no declared type: onnxruntime infers it
  const model = modelFromGraph(b.build());
  assert.equal(model.irVersion, 8);

  const xValues = [0.5, -1, 2, 1, 1, 1];
  const session = await ort.InferenceSession.create(saveModel(model));
  const out = await session.run({ x: new ort.Tensor("float32", Float32Array.from(xValues), [2, 3]) });

  const W = [
    [1, 0, -1, 2],
    [0.5, 1, 0, -2],
    [0, 1, 3, 0.25],
  ];
  const B = [0.1, -0.2, 0.3, 0];
  const W2 = [
    [1, 2, 3],
    [-1, 0, 1],
  ];
  const transposedData = out[transposed]!.data as Float32Array;
  const gemmData = out[gemm]!.data as Float32Array;
  assert.deepEqual([...out[transposed]!.dims], [4, 2]);
  assert.deepEqual([...out[gemm]!.dims], [2, 2]);
  for (let r = 0; r < 2; r++) {
    const row = xValues.slice(r * 3, r * 3 + 3);
    const z = B.map((bj, j) => bj + row.reduce((acc, xk, k) => acc + xk * W[k]![j]!, 0));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const sum = e.reduce((a, v) => a + v, 0);
    for (let j = 0; j < 4; j++)
      assert.ok(Math.abs(transposedData[j * 2 + r]! - e[j]! / sum) < 1e-6, `softmax[${r},${j}]`);
    for (let j = 0; j < 2; j++) {
      const dot = row.reduce((acc, xk, k) => acc + xk * W2[j]![k]!, 0);
      assert.ok(Math.abs(gemmData[r * 2 + j]! - 2 * dot) < 1e-6, `gemm[${r},${j}]`); // C omitted: beta unused
    }
  }

  // The file records what we built: attribute types, dims, opsets, producer.
  const proto = onnx.ModelProto.decode(saveModel(model));
  const pg = proto.graph as onnx.GraphProto;
  const AT = onnx.AttributeProto.AttributeType;
  const attrOf = (op: string, attr: string) =>
    attributesOf(nodesOf(pg).find((n) => n.opType === op)!).find((a) => a.name === attr)!;
  assert.equal(attrOf("Gemm", "alpha").type, AT.FLOAT);
  assert.equal(attrOf("Gemm", "alpha").f, 2);
  assert.equal(attrOf("Gemm", "transB").type, AT.INT);
  assert.equal(attrOf("Softmax", "axis").type, AT.INT);
  assert.equal(Number(attrOf("Softmax", "axis").i), -1);
  assert.equal(attrOf("Transpose", "perm").type, AT.INTS);
  assert.equal(attrOf("Constant", "value").type, AT.TENSOR);
  assert.deepEqual(
    (pg.input[0]!.type!.tensorType!.shape!.dim ?? []).map((d) => d.dimParam || Number(d.dimValue)),
    ["batch", 3],
  );
  assert.deepEqual(
    proto.opsetImport.map((o) => [o.domain, Number(o.version)]),
    [["", 17]],
  );
  assert.equal(proto.producerName, "mhafuse");
  assert.equal(initializersOf(pg).find((t) => t.name === "w")!.rawData.length, 48);
});

test("int64 attributes beyond 2^53 are written as clamped int64, not wrapped", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", [4]);
  b.output(
    b.op(
      "Custom",
      [x],
      { big: { type: "int", value: 2 ** 63 }, neg: { type: "ints", value: [-(2 ** 63), -1] } },
      { domain: "test.domain" },
    ),
  );
  const proto = onnx.ModelProto.decode(saveModel(modelFromGraph(b.build())));
  const attrs = attributesOf(nodesOf(proto.graph!)[0]!);
  const big = attrs.find((a) => a.name === "big")!.i as unknown as { low: number; high: number };
  assert.equal(big.high, 0x7fffffff);
  assert.equal(big.low, -1);
  const neg = attrs.find((a) => a.name === "neg")!.ints as unknown as { low: number; high: number }[];
  assert.deepEqual(
    neg.map((v) => [v.high | 0, v.low | 0]),
    [
      [-0x80000000, 0],
      [-1, -1],
    ],
  );
  assert.deepEqual(
    proto.opsetImport.map((o) => [o.domain, Number(o.version)]),
    [
      ["", 17],
      ["test.domain", 1],
    ],
  );
});

test("ir_version follows the opset so onnxruntime accepts newer opsets", async () => {
  for (const [opset, ir] of [
    [13, 8],
    [19, 9],
    [21, 10],
  ] as const) {
    const b = new GraphBuilder({ opset });
    const x = b.input("x", "float32", [3]);
    b.output(b.op("Relu", [x]), "float32", [3]);
    const model = modelFromGraph(b.build());
    assert.equal(model.irVersion, ir);
    const bytes = saveModel(model);
    assert.equal(Number(onnx.ModelProto.decode(bytes).irVersion), ir);
    const session = await ort.InferenceSession.create(bytes);
    const out = await session.run({ x: new ort.Tensor("float32", Float32Array.from([-1, 0, 2]), [3]) });
    assert.deepEqual([...(out[session.outputNames[0]!]!.data as Float32Array)], [0, 0, 2]);
  }
  // A model loaded with a lower IR than its opset needs is raised on export; a higher one is kept.
  const b = new GraphBuilder({ opset: 17 });
  b.output(b.op("Relu", [b.input("x", "float32", [1])]));
  const low = { ...modelFromGraph(b.build()), irVersion: 3 };
  assert.equal(Number(onnx.ModelProto.decode(saveModel(low)).irVersion), 8);
  const high = { ...modelFromGraph(b.build()), irVersion: 10 };
  assert.equal(Number(onnx.ModelProto.decode(saveModel(high)).irVersion), 10);
});

test("saveModelFile writes a file that loads back to the same model, float16/int8/bool tensors included", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mhafuse-save-"));
  try {
    const b = new GraphBuilder({ opset: 17 });
    const x = b.input("x", "float16", [2]);
    b.init(new Tensor("float16", Uint16Array.from([0x3c00, 0xc000]), [2]), "h");
    b.init(new Tensor("int8", [-3, 4], [2]), "i8");
    b.init(new Tensor("bool", [1, 0, 1], [3]), "flags");
    b.init(new Tensor("int64", [-(2n ** 62n), 5n], [2]), "big");
    b.init(new Tensor("float64", [Math.E], []), "e");
    b.output(b.op("Add", [x, "h"]), "float16", [2]);
    const graph = b.build();
    graph.valueInfo.set("Add_0_out", { name: "Add_0_out", dtype: "float16", shape: [2] });
    const model = modelFromGraph(graph, { metadata: { author: "test" } });
    const file = path.join(dir, "m.onnx");
    saveModelFile(model, file);
    const loaded = loadModelSync(file);
    assert.equal(loaded.baseDir, dir);
    assert.deepStrictEqual(comparable(loaded), comparable(model));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
