import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { DType } from "../src/ir/dtype.js";
import type { Dim, Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { saveModel } from "../src/onnx/index.js";
import "../src/ops/index.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { runOnOnnxruntime } from "./support/ort.js";

function random(n: number, seed: number, amp = 1): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 * amp - amp;
  });
}

const f32 = (data: number[], dims: number[]) => new Tensor("float32", data, dims);

function randomFloat(dims: number[], seed: number): Tensor {
  return f32(
    random(
      dims.reduce((a, d) => a * d, 1),
      seed,
      2,
    ),
    dims,
  );
}

/**
 * Our run of the mhafuse graph vs onnxruntime's run of the converted graph, on the same feeds.
 * Returns the converted graph's op types for structural checks.
 */
async function roundTrip(graph: Graph, feeds: Record<string, Tensor>, atol = 2e-5): Promise<string[]> {
  const expected = runGraph(graph, feeds);
  const { graph: converted, notes } = toOnnxruntime(graph);
  assert.ok(notes.length > 0);
  const ops = converted.nodes.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType));
  assert.ok(!ops.some((o) => o.startsWith("mhafuse.")), `mhafuse op left in ${ops}`);
  const actual = await runOnOnnxruntime(converted, feeds);
  for (const { name } of graph.outputs) {
    const a = expected.get(name)!;
    const b = actual[name]!;
    assert.deepEqual([...b.dims], [...a.dims], `${name} dims`);
    const want = a.toNumbers();
    const got = Array.from(b.data as ArrayLike<number | bigint>, Number);
    for (let i = 0; i < want.length; i++) {
      assert.ok(
        Math.abs(got[i]! - want[i]!) <= atol + 1e-4 * Math.abs(want[i]!),
        `${name}[${i}]: onnxruntime ${got[i]}, mhafuse ${want[i]}`,
      );
    }
  }
  return ops;
}

interface AttentionSpec {
  q: Dim[];
  k: Dim[];
  v: Dim[];
  bias?: number[];
  lengths?: boolean;
  attrs: Record<string, number>;
  opset?: number;
}

function attentionGraph(s: AttentionSpec): Graph {
  const b = new GraphBuilder({ opset: s.opset ?? 17 });
  const inputs = [b.input("q", "float32", s.q), b.input("k", "float32", s.k), b.input("v", "float32", s.v)];
  inputs.push(s.bias ? b.input("bias", "float32", s.bias) : "");
  if (s.lengths) inputs.push(b.input("lengths", "int32", [s.q[0]!]));
  while (inputs.at(-1) === "") inputs.pop();
  b.output(b.op("Attention", inputs, s.attrs, { domain: "mhafuse", name: "attn" }), "float32");
  return b.build();
}

const feedsFor = (shapes: Record<string, number[]>, seed: number) =>
  Object.fromEntries(Object.entries(shapes).map(([name, dims], i) => [name, randomFloat(dims, seed + i)]));

for (const opset of [17, 23]) {
  const target = opset >= 23 ? "Attention" : "com.microsoft.MultiHeadAttention";

  test(`to-onnxruntime (opset ${opset}): cross attention with bias and key_lengths → ${target}`, async () => {
    const graph = attentionGraph({
      q: [2, 3, 8],
      k: [2, 5, 8],
      v: [2, 5, 6],
      bias: [2, 1, 1, 5],
      lengths: true,
      attrs: { num_heads: 2, scale: 0.3 },
      opset,
    });
    const feeds = {
      ...feedsFor({ q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 6], bias: [2, 1, 1, 5] }, 1),
      lengths: new Tensor("int32", [5, 2], [2]),
    };
    const ops = await roundTrip(graph, feeds);
    assert.ok(ops.includes(target), `${ops}`);
  });

  test(`to-onnxruntime (opset ${opset}): GQA, and causal with Sq ≠ Skv (bottom-right) via a built mask`, async () => {
    const graph = attentionGraph({
      q: [1, 3, 16],
      k: [1, 6, 8],
      v: [1, 6, 8],
      attrs: { num_heads: 4, kv_num_heads: 2, causal: 1 },
      opset,
    });
    const ops = await roundTrip(graph, feedsFor({ q: [1, 3, 16], k: [1, 6, 8], v: [1, 6, 8] }, 10));
    assert.ok(ops.includes("Range") && ops.includes("Less"), `${ops}`);
  });

  test(`to-onnxruntime (opset ${opset}): causal self attention with equal symbolic lengths uses the native flag`, async () => {
    const graph = attentionGraph({
      q: ["batch", "seq", 8],
      k: ["batch", "seq", 8],
      v: ["batch", "seq", 8],
      bias: [4],
      attrs: { num_heads: 2, causal: 1 },
      opset,
    });
    const feeds = feedsFor({ q: [2, 4, 8], k: [2, 4, 8], v: [2, 4, 8], bias: [4] }, 20);
    const ops = await roundTrip(graph, feeds);
    assert.ok(!ops.includes("Range"), `${ops}`);
    const { graph: converted } = toOnnxruntime(graph);
    const node = converted.nodes.find(
      (n) => n.opType === (opset >= 23 ? "Attention" : "MultiHeadAttention"),
    )!;
    assert.deepEqual(node.attrs[opset >= 23 ? "is_causal" : "unidirectional"], { type: "int", value: 1 });
  });
}

/** mhafuse.Attention with a KV cache: past_key/past_value in, present_key/present_value out. */
function cachedAttentionGraph(opset: number, bias: boolean): Graph {
  const b = new GraphBuilder({ opset });
  const inputs = [
    b.input("q", "float32", [2, 2, 16]),
    b.input("k", "float32", [2, 2, 8]),
    b.input("v", "float32", [2, 2, 6]),
    bias ? b.input("bias", "float32", [2, 1, 1, 7]) : "",
    "",
    b.input("past_key", "float32", [2, 2, 5, 4]),
    b.input("past_value", "float32", [2, 2, 5, 3]),
  ];
  const attrs = { num_heads: 4, kv_num_heads: 2, causal: 1 };
  const outs = b.opN("Attention", inputs, attrs, { domain: "mhafuse", outputs: 3 });
  for (const o of outs) b.output(o, "float32");
  return b.build();
}

for (const opset of [17, 23]) {
  test(`to-onnxruntime (opset ${opset}): a KV cache (GQA, causal offset by the past, bias) becomes Concat + attention`, async () => {
    for (const bias of [false, true]) {
      const graph = cachedAttentionGraph(opset, bias);
      const shapes: Record<string, number[]> = {
        q: [2, 2, 16],
        k: [2, 2, 8],
        v: [2, 2, 6],
        past_key: [2, 2, 5, 4],
        past_value: [2, 2, 5, 3],
      };
      if (bias) shapes.bias = [2, 1, 1, 7];
      const ops = await roundTrip(graph, feedsFor(shapes, 60 + opset));
      assert.ok(ops.includes("Concat"), `${ops}`);
    }
  });
}

test("to-onnxruntime (opset 23): a sequence of length 0 gives zeros in both engines", async () => {
  const graph = attentionGraph({
    q: [2, 2, 4],
    k: [2, 3, 4],
    v: [2, 3, 4],
    lengths: true,
    attrs: { num_heads: 1 },
    opset: 23,
  });
  const feeds = {
    ...feedsFor({ q: [2, 2, 4], k: [2, 3, 4], v: [2, 3, 4] }, 30),
    lengths: new Tensor("int32", [0, 3], [2]),
  };
  await roundTrip(graph, feeds);
  const y = runGraph(graph, feeds).get("attn_out")!;
  assert.deepEqual([...(y.data as Float32Array).slice(0, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
});

/** Packed [S,B,3E,1,1] QKV (per token [N,3,H]) with lengths and a fallback bias. */
function qkvGraph(
  S: number,
  B: number,
  N: number,
  H: number,
  computePaddedRows: number,
  withLengths = true,
): Graph {
  const b = new GraphBuilder();
  const inputs = [b.input("qkv", "float32", [S, B, 3 * N * H, 1, 1])];
  if (withLengths)
    inputs.push(b.input("lengths", "int32", [B]), b.input("fallback", "float32", [B, 1, 1, S]));
  const y = b.op(
    "QKVToContext",
    inputs,
    { num_heads: N, compute_padded_rows: computePaddedRows },
    { domain: "mhafuse" },
  );
  b.output(y, "float32");
  return b.build();
}

test("to-onnxruntime: QKVToContext with lengths, -1 fallback rows and both padded-row conventions", async () => {
  const [S, B, N, H] = [4, 3, 2, 4];
  const feeds = {
    qkv: randomFloat([S, B, 3 * N * H, 1, 1], 40),
    lengths: new Tensor("int32", [4, 2, -1], [B]),
    fallback: f32(
      [0, 0, 0, 0, 0, 0, 0, 0, 0, -1e9, 0, -1e9].map((x, i) => x + (i % 4) * 0.25),
      [B, 1, 1, S],
    ),
  };
  for (const padded of [0, 1]) {
    const ops = await roundTrip(qkvGraph(S, B, N, H, padded), feeds);
    assert.ok(ops.includes("com.microsoft.MultiHeadAttention"), `${ops}`);
  }
  const { qkv } = feeds;
  await roundTrip(qkvGraph(S, B, N, H, 0, false), { qkv });
});

test("to-onnxruntime: SeqLensFromMask becomes standard ops with the same lengths and -1s", async () => {
  for (const [dtype, values] of [
    // Row 3 holds a 2 and the float32 row 4 a 0.5: no key mask, -1 (the model's own bias runs for them).
    ["int64", [1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 2, 1, 0, 0, 1, 0, 0, 0]],
    ["float32", [1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0.5, 0, 0, 0]],
    // float64 values next to 0 and 1 that float32 would round onto them: still no key mask (rows 0, 1).
    ["float64", [1, 1 + 1e-12, 0, 0, 1, 1e-60, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]],
  ] as [DType, number[]][]) {
    const b = new GraphBuilder();
    b.input("mask", dtype, [5, 4]);
    b.output(b.op("SeqLensFromMask", ["mask"], {}, { domain: "mhafuse" }), "int32");
    const graph = b.build();
    const feeds = { mask: new Tensor(dtype, values, [5, 4]) };
    await roundTrip(graph, feeds, 0);
    const lengths = runGraph(graph, feeds).get(graph.outputs[0]!.name)!;
    const expected = { int64: [3, 4, -1, -1, 1], float32: [1, -1, -1, 4, -1], float64: [-1, -1, 3, -1, 1] }[
      dtype as "int64" | "float32" | "float64"
    ];
    assert.deepEqual([...(lengths.data as Int32Array)], expected);
  }
});

test("to-onnxruntime: a fused graph with SeqLensFromMask feeding QKVToContext converts end to end", async () => {
  const [S, B, N, H] = [3, 2, 2, 2];
  const b = new GraphBuilder();
  b.input("qkv", "float32", [S, B, 3 * N * H, 1, 1]);
  b.input("mask", "int64", [B, S]);
  b.input("fallback", "float32", [B, 1, 1, S]);
  const lengths = b.op("SeqLensFromMask", ["mask"], {}, { domain: "mhafuse" });
  const y = b.op(
    "QKVToContext",
    ["qkv", lengths, "fallback"],
    { num_heads: N, compute_padded_rows: 1 },
    { domain: "mhafuse" },
  );
  b.output(y, "float32");
  await roundTrip(b.build(), {
    qkv: randomFloat([S, B, 3 * N * H, 1, 1], 50),
    mask: new Tensor("int64", [1, 1, 0, 0, 1, 1], [B, S]),
    fallback: f32([0, 0, -1e9, -1e9, 0, 0], [B, 1, 1, S]),
  });
});

test("to-onnxruntime: the input graph is left untouched", () => {
  const graph = attentionGraph({ q: [1, 2, 4], k: [1, 2, 4], v: [1, 2, 4], attrs: { num_heads: 1 } });
  const before = graph.nodes.map((n) => n.opType).join();
  toOnnxruntime(graph);
  assert.equal(graph.nodes.map((n) => n.opType).join(), before);
  assert.ok(graph.opsets.has("mhafuse"));
});

test("to-onnxruntime: fused fixture models run in onnxruntime and match the reference outputs", async () => {
  const { readFileSync } = await import("node:fs");
  const { loadModelSync, tensorFromJson } = await import("../src/onnx/index.js");
  const { optimizeGraph } = await import("../src/passes/index.js");
  const dir = new URL("../../shared/fixtures/onnx/", import.meta.url);
  for (const name of [
    "bert_eager",
    "bart_eager",
    "phi3_eager",
    "qwen3_sdpa",
    "gpt_neox_sdpa",
    "llama_past",
  ]) {
    const model = loadModelSync(new URL(`${name}.onnx`, dir).pathname);
    const { graph: fused } = optimizeGraph(model.graph);
    const { graph } = toOnnxruntime(fused);
    const ops = graph.nodes.map((n) => n.opType);
    assert.ok(
      ops.includes("MultiHeadAttention") || ops.includes("Attention"),
      `${name}: no MultiHeadAttention / Attention in the export`,
    );
    if (!name.startsWith("b")) {
      // The decoders' folded rotary goes to onnxruntime as it is (com.microsoft.RotaryEmbedding, Q and K).
      assert.equal(ops.filter((o) => o === "RotaryEmbedding").length, 4, `${name}: ${ops}`);
      assert.ok(!ops.includes("Neg"), `${name}: rotate_half left in the export`);
    }
    // Every RMSNorm (per layer, the final one and Qwen3's per-head Q/K norms) goes as one
    // SimplifiedLayerNormalization, which onnxruntime registers in the ONNX domain.
    const rmsNorms = { phi3_eager: 5, qwen3_sdpa: 9, llama_past: 5 }[name] ?? 0;
    assert.equal(ops.filter((o) => o === "SimplifiedLayerNormalization").length, rmsNorms, `${name}: ${ops}`);
    assert.ok(!ops.includes("ReduceMean"), `${name}: a spelled-out RMSNorm left in the export`);
    const session = await ort.InferenceSession.create(saveModel({ ...model, graph }));
    const io = JSON.parse(readFileSync(new URL(`${name}.io.json`, dir), "utf8"));
    for (const c of io.cases) {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(c.inputs)) {
        const t = tensorFromJson(v as Parameters<typeof tensorFromJson>[0]);
        feeds[k] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as Float32Array, [...t.dims]);
      }
      const result = await session.run(feeds);
      for (const [k, v] of Object.entries(c.outputs)) {
        const want = tensorFromJson(v as Parameters<typeof tensorFromJson>[0]);
        const got = result[k]!.data as Float32Array;
        let maxDiff = 0;
        for (let i = 0; i < want.size; i++)
          maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want.getNumber(i)));
        assert.ok(maxDiff <= 1e-4, `${name} ${k}: max |diff| ${maxDiff}`);
      }
    }
  }
});
