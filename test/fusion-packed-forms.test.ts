import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { type AttentionReport, optimizeGraph, summarizeReport } from "../src/passes/index.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { maxAbsDiff } from "./support/compare.js";

// The packed op wherever its rules hold: self-attention without a mask (ViT/DeiT), Q/K/V split from one
// fused projection (GPT-2's c_attn Conv1D, Phi-3's qkv_proj) repacked, and GPT-NeoX's head-interleaved
// query_key_value used without repacking; causal blocks of those forms take the general op and say why.
// Every fused graph is compared with onnxruntime-node running the unfused graph.

const [B, S, N, H] = [2, 6, 4, 8];
const E = N * H;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function randomTensor(dims: number[], r: () => number, scale = 1): Tensor<"float32"> {
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = r() * scale;
  return new Tensor("float32", data, dims);
}

type Form = "vit" | "gpt2" | "phi3" | "neox";
interface Spec {
  form: Form;
  causal?: boolean;
  mask?: boolean;
  /** Scale other than 1/√H (folded into the Q weights by the packed path). */
  scale?: number;
}

/** One attention layer in the export style of `form`; output y = context · W_o. */
function build(spec: Spec): { graph: Graph; feeds: Record<string, Tensor> } {
  const r = rng(11);
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", "float32", ["batch", "seq", E]);
  const feeds: Record<string, Tensor> = { x: randomTensor([B, S, E], r, 2) };
  const heads = (t: string) =>
    b.op("Transpose", [b.op("Reshape", [t, b.const("int64", [0, 0, N, H])])], { perm: [0, 2, 1, 3] });
  let q: string;
  let k: string;
  let v: string;
  const w3 = b.init(randomTensor([E, 3 * E], r, 0.5), "w_qkv");
  const b3 = b.init(randomTensor([3 * E], r, 0.2), "b_qkv");
  if (spec.form === "vit") {
    const proj = () =>
      b.op("Add", [
        b.op("MatMul", [x, b.init(randomTensor([E, E], r, 0.5))]),
        b.init(randomTensor([E], r, 0.2)),
      ]);
    [q, k, v] = [heads(proj()), heads(proj()), heads(proj())];
  } else if (spec.form === "gpt2") {
    // HF Conv1D: addmm(bias, x.view(-1, E), W).view(B, S, 3E), then split(E, dim=2).
    const flat = b.op("Reshape", [x, b.const("int64", [-1, E])]);
    const gemm = b.op("Gemm", [flat, w3, b3]);
    const shape = b.op(
      "Concat",
      [
        b.op("Slice", [b.op("Shape", [x]), b.const("int64", [0]), b.const("int64", [2])]),
        b.const("int64", [3 * E]),
      ],
      { axis: 0 },
    );
    const qkv = b.op("Reshape", [gemm, shape]);
    const parts = b.opN("Split", [qkv, b.const("int64", [E, E, E])], { axis: 2 }, { outputs: 3 });
    [q, k, v] = parts.map(heads) as [string, string, string];
  } else if (spec.form === "phi3") {
    const qkv = b.op("MatMul", [x, w3]);
    const slice = (i: number) =>
      b.op("Slice", [
        qkv,
        b.const("int64", [i * E]),
        b.const("int64", [i === 2 ? 2 ** 62 : (i + 1) * E]),
        b.const("int64", [2]),
        b.const("int64", [1]),
      ]);
    [q, k, v] = [0, 1, 2].map((i) => heads(slice(i))) as [string, string, string];
  } else {
    // GPT-NeoX: view(B, S, N, 3H).transpose(1, 2).chunk(3, dim=-1); the weight is per head [3, H].
    const qkv = b.op("Add", [b.op("MatMul", [x, w3]), b3]);
    const t = b.op("Transpose", [b.op("Reshape", [qkv, b.const("int64", [0, 0, -1, 3 * H])])], {
      perm: [0, 2, 1, 3],
    });
    const chunk = (i: number) =>
      b.op("Slice", [t, b.const("int64", [i * H]), b.const("int64", [(i + 1) * H]), b.const("int64", [-1])]);
    [q, k, v] = [chunk(0), chunk(1), chunk(2)];
  }
  const kT = b.op("Transpose", [k], { perm: [0, 1, 3, 2] });
  let scores: string;
  if (spec.scale === undefined && spec.form === "neox") {
    // SDPA style: Q and Kᵀ each times H^-¼.
    const quarter = b.const("float32", H ** -0.25);
    scores = b.op("MatMul", [b.op("Mul", [q, quarter]), b.op("Mul", [kT, quarter])]);
  } else {
    scores = b.op("Mul", [b.op("MatMul", [q, kT]), b.const("float32", spec.scale ?? 1 / Math.sqrt(H))]);
  }
  if (spec.mask) {
    const m = b.input("attention_mask", "int64", ["batch", "seq"]);
    feeds.attention_mask = new Tensor(
      "int64",
      Array.from({ length: B * S }, (_, i) => (i >= 2 * S - 2 ? 0 : 1)),
      [B, S],
    );
    const inverted = b.op("Sub", [b.const("float32", 1), b.op("Cast", [m], { to: 1 })]);
    scores = b.op("Add", [
      scores,
      b.op("Unsqueeze", [b.op("Mul", [inverted, b.const("float32", -10000)]), b.const("int64", [1, 2])]),
    ]);
  }
  if (spec.causal) {
    const ones = b.init(new Tensor("float32", new Array(S * S).fill(1), [S, S]));
    const lower = b.op("Cast", [b.op("Trilu", [ones], { upper: 0 })], { to: 9 });
    scores = b.op("Add", [
      scores,
      b.op("Where", [lower, b.const("float32", 0), b.const("float32", -Infinity)]),
    ]);
  }
  const ctx = b.op("MatMul", [b.op("Softmax", [scores], { axis: -1 }), v]);
  const merged = b.op("Reshape", [
    b.op("Transpose", [ctx], { perm: [0, 2, 1, 3] }),
    b.const("int64", [0, 0, E]),
  ]);
  b.output(b.op("MatMul", [merged, b.init(randomTensor([E, E], r, 0.5))], {}, { outputs: ["y"] }), "float32");
  return { graph: b.build(), feeds };
}

async function ortY(graph: Graph, feeds: Record<string, Tensor>): Promise<Tensor> {
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)));
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds))
    ortFeeds[k] = new ort.Tensor(t.type as "float32", t.data as Float32Array, [...t.dims]);
  const y = (await session.run(ortFeeds)).y!;
  return new Tensor("float32", y.data as Float32Array, y.dims);
}

async function fuse(
  spec: Spec,
): Promise<{ block: AttentionReport; fused: Graph; graph: Graph; summary: string }> {
  const { graph, feeds } = build(spec);
  const { graph: fused, report } = optimizeGraph(graph, { level: "all" });
  const summary = summarizeReport(report);
  assert.equal(report.length, 1, summary);
  assert.ok(report[0]!.fused, summary);
  const d = maxAbsDiff(runGraph(fused, feeds).get("y")!, await ortY(graph, feeds));
  assert.ok(d <= 1e-4, `fused vs onnxruntime-node: max |diff| ${d}`);
  return { block: report[0]!, fused, graph, summary };
}

const packedOp = (g: Graph) => g.nodes.find((n) => n.opType === "QKVToContext");

test("ViT-style self-attention without a mask: the packed op, no lengths input", async () => {
  const { block, fused, summary } = await fuse({ form: "vit" });
  assert.deepEqual([block.kind, block.path, block.mask], ["self", "packed-qkv", "none"], summary);
  assert.match(block.why ?? "", /no mask/);
  assert.equal(packedOp(fused)!.inputs.length, 1);
  assert.ok(!fused.nodes.some((n) => n.opType === "SeqLensFromMask"));
  // Lowered for onnxruntime (MultiHeadAttention without a mask), it runs there with the same numbers.
  const { feeds } = build({ form: "vit" });
  const lowered = toOnnxruntime(fused).graph;
  assert.ok(!lowered.nodes.some((n) => n.domain === "mhafuse"));
  const d = maxAbsDiff(await ortY(lowered, feeds), runGraph(fused, feeds).get("y")!);
  assert.ok(d <= 1e-5, `--target onnxruntime: max |diff| ${d}`);
});

for (const form of ["gpt2", "phi3"] as const) {
  test(`${form}: Q|K|V split of one projection, non-causal, is repacked for the packed op`, async () => {
    const { block, fused, summary } = await fuse({ form, mask: true, scale: 0.2 });
    assert.deepEqual([block.kind, block.path], ["self", "packed-qkv"], summary);
    assert.ok(block.traits.includes("fused-qkv"), summary);
    assert.match(block.why ?? "", /split projection is repacked/);
    assert.ok(fused.initializers.has([...fused.initializers.keys()].find((k) => k.includes("qkv_weight"))!));
  });
}

test("gpt2: causal c_attn attention takes the general op, the report says why", async () => {
  const { block, summary } = await fuse({ form: "gpt2", causal: true });
  assert.deepEqual([block.kind, block.path, block.op], ["causal", "attention", "mhafuse.Attention"], summary);
  assert.ok(block.traits.includes("fused-qkv"), summary);
  assert.match(block.why ?? "", /causal: the packed op .* no causal mask .*Q\|K\|V split projection/);
});

test("GPT-NeoX head-interleaved weight, non-causal: the packed op reads the export's own projection", async () => {
  const { block, fused, graph, summary } = await fuse({ form: "neox", mask: true });
  assert.deepEqual([block.kind, block.path], ["self", "packed-qkv"], summary);
  assert.ok(block.traits.includes("interleaved-qkv"), summary);
  assert.match(block.why ?? "", /without repacking/);
  // No packed weight was made: the only [E, 3E] weight is the model's own, still read by its projection
  // (a Gemm after the linear-bias pass) whose output the packed op reads.
  const wide = [...fused.initializers].filter(([, t]) => t.dims.join() === `${E},${3 * E}`);
  assert.deepEqual(
    wide.map(([k]) => k),
    ["w_qkv"],
  );
  assert.ok(fused.nodes.some((n) => n.inputs.includes("w_qkv")));
  assert.ok(graph.initializers.has("w_qkv"));
});

test("GPT-NeoX with another scale: the Q part of the interleaved weight is rescaled in place", async () => {
  const { block, summary } = await fuse({ form: "neox", scale: 0.3 });
  assert.deepEqual([block.path, block.mask], ["packed-qkv", "none"], summary);
  assert.match(block.why ?? "", /only its Q part is rescaled/);
});

test("GPT-NeoX causal: the general op, and the report names the interleaved layout", async () => {
  const { block, summary } = await fuse({ form: "neox", causal: true, mask: true });
  assert.deepEqual([block.kind, block.path], ["causal", "attention"], summary);
  assert.match(block.why ?? "", /causal.*head-interleaved \[N,3,H\], the packed op's layout/);
});
