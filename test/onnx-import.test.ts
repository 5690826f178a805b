import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { runGraph } from "../src/engine/executor.js";
import { ModelLoadError, UnsupportedOpError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { floatToHalf } from "../src/ir/float16.js";
import { Tensor } from "../src/ir/tensor.js";
import {
  loadModel,
  loadModelSync,
  modelFromGraph,
  saveModelFile,
  tensorFromJson,
  tensorToJson,
} from "../src/onnx/index.js";
import { onnx } from "../src/onnx/proto.js";
import { FIXTURES as SHARED_FIXTURES } from "./support/fixtures.js";

/** The decoded protobuf, with the repeated fields typed as the message classes decode() really returns. */
const decodeGraph = (bytes: Uint8Array) => onnx.ModelProto.decode(bytes).graph as onnx.GraphProto;
const nodesOf = (g: onnx.IGraphProto) => g.node as onnx.NodeProto[];
const initializersOf = (g: onnx.IGraphProto) => g.initializer as onnx.TensorProto[];
const attributesOf = (n: onnx.INodeProto) => n.attribute as onnx.AttributeProto[];
const FIXTURES = `${SHARED_FIXTURES}onnx/`;
const fixture = (file: string) => path.join(FIXTURES, file);

/** Graph input dims as the fixtures' README describes the exports (dynamic batch and sequence axes). */
const FIXTURE_INPUTS: Record<string, Record<string, (string | number)[]>> = {
  bert_eager: {
    input_ids: ["batch", "seq"],
    attention_mask: ["batch", "seq"],
    token_type_ids: ["batch", "seq"],
  },
  bert_sdpa: {
    input_ids: ["batch", "seq"],
    attention_mask: ["batch", "seq"],
    token_type_ids: ["batch", "seq"],
  },
  bert_ort_fused: {
    input_ids: ["batch", "seq"],
    attention_mask: ["batch", "seq"],
    token_type_ids: ["batch", "seq"],
  },
  distilbert_eager: { input_ids: ["b", "s"], attention_mask: ["b", "s"] },
  bart_eager: { input_ids: ["b", "s"], attention_mask: ["b", "s"], decoder_input_ids: ["b", "t"] },
  bart_sdpa: { input_ids: ["b", "s"], attention_mask: ["b", "s"], decoder_input_ids: ["b", "t"] },
};

for (const [name, expectedInputs] of Object.entries(FIXTURE_INPUTS)) {
  test(`loads fixture ${name}: inputs, outputs, counts and weights match protobuf and onnxruntime`, async () => {
    const file = fixture(`${name}.onnx`);
    const model = await loadModel(file);
    const g = model.graph;
    const session = await ort.InferenceSession.create(file);
    assert.deepEqual(
      g.inputs.map((i) => i.name),
      session.inputNames,
    );
    assert.deepEqual(
      g.outputs.map((o) => o.name),
      session.outputNames,
    );
    for (const input of g.inputs) {
      assert.equal(input.dtype, "int64", input.name);
      assert.deepEqual(input.shape, expectedInputs[input.name], input.name);
    }
    assert.equal(model.baseDir, FIXTURES.replace(/\/$/, ""));
    assert.equal(g.outputs[0]!.dtype, "float32");

    // Independent view of the same file straight from the protobuf classes.
    const proto = onnx.ModelProto.decode(readFileSync(file));
    const pg = decodeGraph(readFileSync(file));
    assert.equal(g.nodes.length, nodesOf(pg).length);
    assert.equal(g.initializers.size, initializersOf(pg).length);
    assert.equal(model.irVersion, Number(proto.irVersion));
    assert.equal(g.opsets.get(""), 17);
    assert.equal(g.opsets.has("com.microsoft"), name === "bert_ort_fused");
    assert.equal(new Set(g.nodes.map((n) => n.name)).size, g.nodes.length, "node names are unique");
    assert.deepEqual(
      g.nodes.map((n) => n.opType),
      nodesOf(pg).map((n) => n.opType),
    );

    // Weights: compare every float32 initializer with a DataView read of its raw bytes.
    for (const t of initializersOf(pg)) {
      const ours = g.initializers.get(t.name!)!;
      assert.deepEqual([...ours.dims], t.dims.map(Number));
      assert.equal(t.dataType, 1);
      const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
      for (let i = 0; i < ours.size; i += 7) assert.equal(ours.data[i], view.getFloat32(i * 4, true));
    }
  });
}

test("Constant nodes with tensor attributes decode to the right values", () => {
  const file = fixture("bert_eager.onnx");
  const model = loadModelSync(file);
  let checked = 0;
  for (const [i, n] of nodesOf(decodeGraph(readFileSync(file))).entries()) {
    if (n.opType !== "Constant") continue;
    const t = attributesOf(n).find((a) => a.name === "value")!.t as onnx.TensorProto;
    const ours = model.graph.nodes[i]!.attrs.value!;
    assert.equal(ours.type, "tensor");
    const tensor = ours.value as Tensor;
    assert.deepEqual([...tensor.dims], t.dims.map(Number));
    const raw = t.rawData;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let k = 0; k < tensor.size; k++) {
      if (t.dataType === 7) assert.equal(tensor.data[k], view.getBigInt64(k * 8, true));
      else if (t.dataType === 1) assert.equal(tensor.data[k], view.getFloat32(k * 4, true));
      else if (t.dataType === 9) assert.equal(tensor.data[k], view.getUint8(k));
    }
    checked++;
  }
  assert.ok(checked > 10, `checked ${checked} constants`);
});

/** A hand-made ModelProto exercising the storage forms exporters use but the fixtures do not. */
function handMadeModel(defaultOpset = 17): Uint8Array {
  const L = (low: number, high: number) => ({ low, high, unsigned: false });
  const thenBranch = {
    name: "then",
    node: [{ opType: "Identity", input: ["f32"], output: ["then_out"] }],
    output: [{ name: "then_out", type: { tensorType: { elemType: 1 } } }],
  };
  const elseBranch = {
    name: "else",
    node: [{ opType: "Neg", input: ["f32"], output: ["else_out"] }],
    output: [{ name: "else_out", type: { tensorType: { elemType: 1 } } }],
  };
  const graph = {
    name: "hand",
    initializer: [
      { name: "f32", dims: [3], dataType: 1, floatData: [1.5, -2, 3.25] },
      { name: "f64", dims: [2], dataType: 11, doubleData: [0.1, -1e300] },
      { name: "i8", dims: [2, 2], dataType: 3, int32Data: [-128, 127, 0, -1] },
      { name: "u8", dims: [2], dataType: 2, int32Data: [255, 7] },
      { name: "b", dims: [3], dataType: 9, int32Data: [1, 0, 1] },
      { name: "h", dims: [2], dataType: 10, int32Data: [floatToHalf(1.5), floatToHalf(-0.25)] },
      { name: "i32", dims: [1], dataType: 6, int32Data: [-7] },
      // -1 and INT64_MAX as Long bit patterns, 42 as a plain number.
      { name: "i64", dims: [3], dataType: 7, int64Data: [L(-1, -1), L(-1, 0x7fffffff), 42] },
      { name: "scalar", dims: [], dataType: 1, rawData: new Uint8Array(new Float32Array([2.5]).buffer) },
    ],
    // "f32" is listed as an input too (IR < 4 style); it must stay an initializer only.
    input: [
      {
        name: "x",
        type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: "batch" }, { dimValue: 4 }, {}] } } },
      },
      { name: "cond", type: { tensorType: { elemType: 9, shape: { dim: [] } } } },
      { name: "f32", type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 3 }] } } } },
    ],
    output: [{ name: "y", type: { tensorType: { elemType: 1 } } }],
    valueInfo: [{ name: "c", type: { tensorType: { elemType: 7, shape: { dim: [{ dimValue: 2 }] } } } }],
    node: [
      {
        opType: "Constant",
        output: ["c"],
        attribute: [{ name: "value", type: 4, t: { dims: [2], dataType: 7, int64Data: [5, L(-3, -1)] } }],
      },
      {
        name: "attrs",
        opType: "Custom",
        domain: "custom.domain",
        input: ["x", "", "c"],
        output: ["z"],
        attribute: [
          { name: "f", type: 1, f: 0.5 },
          { name: "i", type: 2, i: L(-5, -1) },
          { name: "s", type: 3, s: new TextEncoder().encode("héllo") },
          { name: "fs", type: 6, floats: [1, 2.5] },
          { name: "is", type: 7, ints: [1, L(-1, -1), L(0, 1)] },
          { name: "ss", type: 8, strings: [new TextEncoder().encode("a"), new TextEncoder().encode("bc")] },
          { name: "ts", type: 9, tensors: [{ dims: [1], dataType: 6, int32Data: [9] }] },
          // type left UNDEFINED as very old exporters did: inferred from the populated field.
          { name: "old_int", i: 3 },
        ],
      },
      { opType: "Relu", domain: "ai.onnx", input: ["x"], output: ["r"] },
      { name: "ms", opType: "FusedMatMul", domain: "com.microsoft", input: ["r", "r"], output: ["m"] },
      {
        opType: "If",
        input: ["cond"],
        output: ["y"],
        attribute: [
          { name: "then_branch", type: 5, g: thenBranch },
          { name: "else_branch", type: 5, g: elseBranch },
        ],
      },
      { opType: "Relu", input: ["x"], output: ["r2"] },
    ],
  };
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      producerName: "hand",
      opsetImport: [
        { domain: "ai.onnx", version: defaultOpset },
        { domain: "com.microsoft", version: 1 },
        { domain: "custom.domain", version: 3 },
      ],
      metadataProps: [{ key: "k", value: "v" }],
      graph,
    }),
  ).finish();
}

test("typed data fields, Long/number int64s, all attribute types, subgraphs and symbolic dims", () => {
  const model = loadModelSync(handMadeModel());
  const g = model.graph;
  const init = (n: string) => g.initializers.get(n)!;
  assert.deepEqual([...init("f32").data], [1.5, -2, 3.25]);
  assert.deepEqual([...init("f64").data], [0.1, -1e300]);
  assert.equal(init("i8").type, "int8");
  assert.deepEqual([...init("i8").data], [-128, 127, 0, -1]);
  assert.deepEqual([...init("u8").data], [255, 7]);
  assert.equal(init("b").type, "bool");
  assert.deepEqual([...init("b").data], [1, 0, 1]);
  assert.equal(init("h").type, "float16");
  assert.deepEqual(init("h").toNumbers(), [1.5, -0.25]);
  assert.deepEqual([...init("i32").data], [-7]);
  assert.deepEqual([...init("i64").data], [-1n, 9223372036854775807n, 42n]);
  assert.deepEqual([...init("scalar").dims], []);
  assert.deepEqual([...init("scalar").data], [2.5]);

  assert.deepEqual(g.inputs, [
    { name: "x", dtype: "float32", shape: ["batch", 4, null] },
    { name: "cond", dtype: "bool", shape: [] },
  ]);
  assert.deepEqual(g.outputs, [{ name: "y", dtype: "float32" }]);
  assert.deepEqual(g.valueInfo.get("c"), { name: "c", dtype: "int64", shape: [2] });
  assert.deepEqual(
    [...g.opsets],
    [
      ["", 17],
      ["com.microsoft", 1],
      ["custom.domain", 3],
    ],
  );
  assert.equal(model.producerName, "hand");
  assert.deepEqual(model.metadata, { k: "v" });

  const [constant, custom, relu, fused, ifNode, relu2] = g.nodes;
  assert.equal(constant!.name, "Constant_0");
  const c = constant!.attrs.value!;
  assert.ok(c.type === "tensor");
  assert.deepEqual([...c.value.data], [5n, -3n]);
  assert.equal(custom!.domain, "custom.domain");
  assert.deepEqual(custom!.inputs, ["x", "", "c"]);
  assert.deepEqual(custom!.attrs.f, { type: "float", value: 0.5 });
  assert.deepEqual(custom!.attrs.i, { type: "int", value: -5 });
  assert.deepEqual(custom!.attrs.s, { type: "string", value: "héllo" });
  assert.deepEqual(custom!.attrs.fs, { type: "floats", value: [1, 2.5] });
  assert.deepEqual(custom!.attrs.is, { type: "ints", value: [1, -1, 2 ** 32] });
  assert.deepEqual(custom!.attrs.ss, { type: "strings", value: ["a", "bc"] });
  const ts = custom!.attrs.ts!;
  assert.ok(ts.type === "tensors");
  assert.deepEqual([...ts.value[0]!.data], [9]);
  assert.deepEqual(custom!.attrs.old_int, { type: "int", value: 3 });
  assert.equal(relu!.domain, "", "ai.onnx is the default domain");
  assert.equal(fused!.domain, "com.microsoft");
  assert.equal(fused!.name, "ms");
  const thenBranch = ifNode!.attrs.then_branch!;
  assert.ok(thenBranch.type === "graph");
  assert.equal(thenBranch.value.nodes[0]!.opType, "Identity");
  assert.deepEqual(thenBranch.value.outputs, [{ name: "then_out", dtype: "float32" }]);
  const elseBranch = ifNode!.attrs.else_branch!;
  assert.ok(elseBranch.type === "graph");
  assert.equal(elseBranch.value.nodes[0]!.opType, "Neg");
  // Generated names are unique and do not collide with the named ones.
  const names = g.nodes.map((n) => n.name);
  assert.equal(new Set(names).size, names.length);
  assert.notEqual(relu!.name, relu2!.name);
});

test("default-domain opsets outside 1–23 are refused with a clear message", () => {
  for (const v of [0, 24]) {
    assert.throws(
      () => loadModelSync(handMadeModel(v)),
      (e: Error) =>
        e instanceof ModelLoadError && e.message.includes(`opset ${v}`) && e.message.includes("1 to 23"),
    );
  }
  for (const v of [1, 12, 13, 23]) assert.equal(loadModelSync(handMadeModel(v)).graph.opsets.get(""), v);
});

test("an op whose schema at the model's opset predates mhafuse's implementation is refused by name", () => {
  const b = new GraphBuilder({ opset: 6 });
  const x = b.input("x", "float32", [2]);
  b.output(b.op("Add", [x, x]));
  const feeds = { x: new Tensor("float32", [1, 2], [2]) };
  assert.throws(
    () => runGraph(b.build(), feeds),
    (e: unknown) =>
      e instanceof UnsupportedOpError && /opset 6 selects Add's schema from before opset 7/.test(String(e)),
  );
  // Opset 7 is Add with numpy broadcasting: it runs.
  const b7 = new GraphBuilder({ opset: 7 });
  const x7 = b7.input("x", "float32", [2]);
  const y7 = b7.op("Add", [x7, x7]);
  b7.output(y7);
  assert.deepEqual(Array.from(runGraph(b7.build(), feeds).get(y7)!.data as Float32Array), [2, 4]);
});

function modelWithInitializer(t: Record<string, unknown>): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: { name: "g", initializer: [t], output: [{ name: t.name as string }] },
    }),
  ).finish();
}

test("unsupported initializer dtypes name the tensor and the dtype", () => {
  const cases: [number, string][] = [
    [16, "BFLOAT16"],
    [8, "STRING"],
    [17, "FLOAT8E4M3FN"],
    [14, "COMPLEX64"],
  ];
  for (const [code, dtypeName] of cases) {
    assert.throws(
      () =>
        loadModelSync(
          modelWithInitializer({ name: "w_bad", dims: [1], dataType: code, rawData: new Uint8Array(2) }),
        ),
      (e: Error) =>
        e instanceof ModelLoadError && e.message.includes("'w_bad'") && e.message.includes(dtypeName),
    );
  }
});

test("raw_data or typed data of the wrong size is a ModelLoadError", () => {
  assert.throws(
    () =>
      loadModelSync(modelWithInitializer({ name: "w", dims: [2], dataType: 1, rawData: new Uint8Array(7) })),
    (e: Error) => e instanceof ModelLoadError && /raw_data has 7 bytes/.test(e.message),
  );
  assert.throws(
    () => loadModelSync(modelWithInitializer({ name: "w", dims: [3], dataType: 1, floatData: [1, 2] })),
    (e: Error) => e instanceof ModelLoadError && /holds 2 float32 values, its shape needs 3/.test(e.message),
  );
});

test("truncated, random, empty and missing files give ModelLoadError", async () => {
  const bytes = readFileSync(fixture("bert_eager.onnx"));
  const isInvalid = (e: Error) =>
    e instanceof ModelLoadError && e.message.startsWith("not a valid ONNX model");
  assert.throws(() => loadModelSync(bytes.subarray(0, 1000)), isInvalid);
  // Deterministic pseudo-random bytes (xorshift) so a failure can be reproduced.
  const junk = new Uint8Array(4096);
  let s = 0x12345678;
  for (let i = 0; i < junk.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    junk[i] = s & 0xff;
  }
  assert.throws(() => loadModelSync(junk), isInvalid);
  await assert.rejects(loadModel(new Uint8Array(0)), (e: Error) => isInvalid(e) && /empty/.test(e.message));
  await assert.rejects(
    loadModel(path.join(tmpdir(), "no-such-model-mhafuse.onnx")),
    (e: Error) => e instanceof ModelLoadError && /cannot read model file/.test(e.message),
  );
});

test("external data: loads tensors from a file inside the model's folder, refuses the rest", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mhafuse-ext-"));
  try {
    const b = new GraphBuilder({ opset: 17 });
    const x = b.input("x", "float32", [1, 64]);
    const wValues = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i));
    const w = b.init(new Tensor("float32", wValues, [64, 32]), "w");
    const small = b.init(new Tensor("float32", [0.5], [1]), "small");
    b.output(b.op("Mul", [b.op("MatMul", [x, w]), small]), "float32", [1, 32]);
    const modelPath = path.join(dir, "m.onnx");
    saveModelFile(modelFromGraph(b.build()), modelPath, { externalData: { location: "m.weights" } });

    // The weights really are outside the .onnx file; only the small one is inline.
    const stored = initializersOf(decodeGraph(readFileSync(modelPath)));
    const wProto = stored.find((t) => t.name === "w")!;
    assert.equal(wProto.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
    assert.equal(wProto.rawData.length, 0);
    assert.equal(stored.find((t) => t.name === "small")!.dataLocation, 0);

    const loaded = await loadModel(modelPath);
    assert.deepEqual(loaded.graph.initializers.get("w")!.data, wValues);
    assert.deepEqual([...loaded.graph.initializers.get("small")!.data], [0.5]);
    // onnxruntime reads the same external file; its result matches float64 math on the weights.
    const session = await ort.InferenceSession.create(modelPath);
    const xValues = Float32Array.from({ length: 64 }, (_, i) => (i % 5) - 2);
    const out = (await session.run({ x: new ort.Tensor("float32", xValues, [1, 64]) }))[
      session.outputNames[0]!
    ]!;
    for (let j = 0; j < 32; j++) {
      let acc = 0;
      for (let k = 0; k < 64; k++) acc += xValues[k]! * wValues[k * 32 + j]!;
      assert.ok(Math.abs((out.data as Float32Array)[j]! - acc * 0.5) < 1e-4, `column ${j}`);
    }

    // Bytes without a folder cannot resolve external data.
    assert.throws(
      () => loadModelSync(readFileSync(modelPath)),
      (e: Error) => e instanceof ModelLoadError && /without a baseDir/.test(e.message),
    );
    assert.equal(
      loadModelSync(readFileSync(modelPath), { baseDir: dir }).graph.initializers.get("w")!.size,
      2048,
    );

    const withLocation = (location: string, extra: { key: string; value: string }[] = []) => {
      const p = onnx.ModelProto.decode(readFileSync(modelPath));
      const t = initializersOf(p.graph!).find((i) => i.name === "w")!;
      t.externalData = [
        ...t.externalData.map((kv) => (kv.key === "location" ? { key: "location", value: location } : kv)),
        ...extra,
      ].map((kv) => onnx.StringStringEntryProto.create(kv));
      const file = path.join(dir, `edited-${Math.random().toString(36).slice(2)}.onnx`);
      writeFileSync(file, onnx.ModelProto.encode(p).finish());
      return file;
    };
    const loadFails = (file: string, pattern: RegExp) =>
      assert.throws(
        () => loadModelSync(file),
        (e: Error) => e instanceof ModelLoadError && pattern.test(e.message) && e.message.includes("'w'"),
      );
    loadFails(withLocation("missing.bin"), /external data file 'missing.bin' not found/);
    loadFails(withLocation("../x.bin"), /'..\/x.bin' escapes the model's folder/);
    loadFails(withLocation("sub/../../x.bin"), /escapes the model's folder/);
    loadFails(withLocation(path.join(dir, "m.weights")), /is an absolute path/);
    loadFails(withLocation("/etc/hostname"), /is an absolute path/);

    // A data file shorter than the tensor it should hold.
    writeFileSync(path.join(dir, "short.bin"), readFileSync(path.join(dir, "m.weights")));
    truncateSync(path.join(dir, "short.bin"), 1000);
    loadFails(withLocation("short.bin"), /too short/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("JSON tensors: decode fixture inputs and encode them back to the same base64", () => {
  const io = JSON.parse(readFileSync(fixture("bert_eager.io.json"), "utf8"));
  const json = io.cases[0].inputs.input_ids;
  const t = tensorFromJson(json);
  assert.equal(t.type, "int64");
  assert.deepEqual([...t.dims], json.shape);
  const raw = Buffer.from(json.data, "base64");
  for (let i = 0; i < t.size; i++) assert.equal(t.data[i], raw.readBigInt64LE(i * 8));
  assert.deepEqual(tensorToJson(t), json);

  const h = new Tensor("float16", Uint16Array.from([floatToHalf(1), floatToHalf(-2)]), [2]);
  assert.deepEqual(tensorToJson(h), {
    dtype: "float16",
    shape: [2],
    data: Buffer.from([0, 0x3c, 0, 0xc0]).toString("base64"),
  });
  assert.throws(() => tensorFromJson({ dtype: "float32", shape: [3], data: "AAAA" }), /needs 3 elements/);
  assert.throws(() => tensorFromJson({ dtype: "bfloat16", shape: [1], data: "AAA=" }), /unsupported dtype/);
  // Unaligned source offsets are copied into aligned arrays: decoding a float64 works from any buffer.
  const f = tensorFromJson({
    dtype: "float64",
    shape: [1],
    data: Buffer.from(new Float64Array([Math.PI]).buffer).toString("base64"),
  });
  assert.equal(f.data[0], Math.PI);
});

test("graph inputs with an unsupported dtype are refused at load time", () => {
  const bytes = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        input: [{ name: "text", type: { tensorType: { elemType: 8, shape: { dim: [{ dimValue: 1 }] } } } }],
        node: [{ opType: "Identity", input: ["text"], output: ["y"] }],
        output: [{ name: "y" }],
      },
    }),
  ).finish();
  assert.throws(
    () => loadModelSync(bytes),
    (e: Error) => e instanceof ModelLoadError && e.message.includes("'text'") && e.message.includes("STRING"),
  );
});

test("nodes in a domain without an opset_import are refused", () => {
  const bytes = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        input: [{ name: "x", type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } } }],
        node: [{ opType: "Gelu", domain: "com.microsoft", input: ["x"], output: ["y"] }],
        output: [{ name: "y" }],
      },
    }),
  ).finish();
  assert.throws(
    () => loadModelSync(bytes),
    (e: Error) => e instanceof ModelLoadError && /domain 'com.microsoft'.*no opset_import/.test(e.message),
  );
});
