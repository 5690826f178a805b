/**
 * The imported attention ops on the webgpu backend's flash kernel, against onnxruntime-node on the same
 * graph: ONNX Attention-23 (3-D GQA with a boolean mask, 4-D causal with a float mask, a KV-cache step with
 * past concatenated on the device and present outputs). Each node must have run
 * on the GPU (not the CPU reference).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as ort from "onnxruntime-node";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { planGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { DType } from "../src/ir/dtype.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { gpuContext, rand } from "./webgpu-helpers.js";

const backend = new WebGpuBackend();
after(() => backend.dispose());

function graphOf(
  opset: number,
  shapes: Record<string, number[]>,
  attrs: Record<string, number>,
  inputs: string[],
  outputs: number,
  maskType: DType = "float32",
): Graph {
  const b = new GraphBuilder({ opset });
  for (const name of inputs) if (name) b.input(name, name === "mask" ? maskType : "float32", shapes[name]!);
  for (const o of b.opN("Attention", inputs, attrs, { outputs })) b.output(o, "float32");
  return b.build();
}

async function compare(graph: Graph, feeds: Record<string, Tensor>): Promise<void> {
  const prepared = (await backend.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
  const names = graph.outputs.map((o) => o.name);
  const ours = await prepared.run(feeds, names);
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(graph)));
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds))
    ortFeeds[name] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as Float32Array, [...t.dims]);
  const theirs = await session.run(ortFeeds);
  for (const name of names) {
    const a = ours[name]!;
    const b = theirs[name]!;
    assert.deepEqual([...a.dims], [...b.dims], `${name} dims`);
    const want = b.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(a.getNumber(i) - want[i]!));
    assert.ok(worst <= 1e-4, `${name}: max |diff| ${worst} against onnxruntime`);
  }
  const node = graph.nodes[0]!;
  assert.ok(prepared.onDevice.has(node.name), `${node.name} did not run on the GPU`);
  assert.deepEqual(backend.fallbacks(), []);
}

function feedsOf(shapes: Record<string, number[]>, seed: number): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, dims] of Object.entries(shapes)) {
    if (name === "mask") continue;
    out[name] = new Tensor(
      "float32",
      rand(
        dims.reduce((a, d) => a * d, 1),
        seed++,
        2,
      ),
      dims,
    );
  }
  return out;
}

test("webgpu Attention-23: 3-D GQA with a boolean mask, vs onnxruntime", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const shapes = { q: [2, 3, 16], k: [2, 5, 8], v: [2, 5, 8], mask: [3, 5] };
  const allowed = [1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1];
  const feeds = { ...feedsOf(shapes, 10), mask: new Tensor("bool", allowed, [3, 5]) };
  await compare(
    graphOf(23, shapes, { q_num_heads: 4, kv_num_heads: 2 }, ["q", "k", "v", "mask"], 1, "bool"),
    feeds,
  );
});

test("webgpu Attention-23: 4-D causal with a broadcast float mask and a scale, vs onnxruntime", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const shapes = { q: [2, 2, 3, 4], k: [2, 2, 5, 4], v: [2, 2, 5, 4], mask: [2, 1, 3, 5] };
  const feeds = feedsOf(shapes, 20);
  feeds.mask = new Tensor("float32", rand(30, 29, 3), [2, 1, 3, 5]);
  await compare(graphOf(23, shapes, { is_causal: 1 }, ["q", "k", "v", "mask"], 1), feeds);
  const scaled = graphOf(23, shapes, { scale: 0.4 } as Record<string, number>, ["q", "k", "v", "mask"], 1);
  await compare(scaled, feeds);
});

test("webgpu Attention-23: a KV-cache step (past 3, causal offset by it) with present outputs, vs onnxruntime", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const shapes = { q: [1, 4, 2, 4], k: [1, 2, 2, 4], v: [1, 2, 2, 4], pk: [1, 2, 3, 4], pv: [1, 2, 3, 4] };
  const feeds = feedsOf(shapes, 30);
  await compare(graphOf(23, shapes, { is_causal: 1 }, ["q", "k", "v", "", "pk", "pv"], 3), feeds);
});

test("webgpu com.microsoft Attention: projection + mask_index lengths + attention_bias, unidirectional, vs onnxruntime", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const [B, S, D, W] = [2, 4, 8, 24];
  for (const unidirectional of [0, 1]) {
    const b = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
    b.input("x", "float32", [B, S, D]);
    b.input("mask", "int32", [B]);
    b.input("ab", "float32", [1, 2, S, S]);
    const w = b.init(new Tensor("float32", rand(D * W, 40, 0.5), [D, W]), "w");
    const bias = b.init(new Tensor("float32", rand(W, 41, 0.5), [W]), "b");
    const y = b.op(
      "Attention",
      ["x", w, bias, "mask", "", "ab"],
      { num_heads: 2, unidirectional },
      {
        domain: "com.microsoft",
      },
    );
    b.output(y, "float32");
    await compare(b.build(), {
      x: new Tensor("float32", rand(B * S * D, 42), [B, S, D]),
      mask: new Tensor("int32", Int32Array.from([4, 2]), [B]),
      ab: new Tensor("float32", rand(2 * S * S, 43), [1, 2, S, S]),
    });
  }
});

/** A GroupQueryAttention graph (BSD query/key/value or packed QKV, BNSH past, int32 seqlens_k and total). */
function gqaCase(
  attrs: Record<string, number>,
  o: {
    B: number;
    S: number;
    P: number;
    seqlens: number[];
    total: number;
    packed?: boolean;
    rotary?: boolean;
  },
  seed: number,
): { graph: Graph; feeds: Record<string, Tensor> } {
  const { num_heads: N, kv_num_heads: Nkv } = attrs as { num_heads: number; kv_num_heads: number };
  // onnxruntime's rotary kernels need head sizes that are multiples of 16.
  const H = o.rotary ? 16 : 8;
  const b = new GraphBuilder({ opsets: { "": 17, "com.microsoft": 1 } });
  const feeds: Record<string, Tensor> = {};
  const f32 = (name: string, dims: number[]) => {
    feeds[name] = new Tensor(
      "float32",
      rand(
        dims.reduce((a, d) => a * d, 1),
        seed++,
        2,
      ),
      dims,
    );
    return b.input(name, "float32", dims);
  };
  const i32 = (name: string, values: number[]) => {
    feeds[name] = new Tensor("int32", Int32Array.from(values), [values.length]);
    return b.input(name, "int32", [values.length]);
  };
  const inputs = [
    f32("q", [o.B, o.S, (o.packed ? N + 2 * Nkv : N) * H]),
    o.packed ? "" : f32("k", [o.B, o.S, Nkv * H]),
    o.packed ? "" : f32("v", [o.B, o.S, Nkv * H]),
    o.P ? f32("pk", [o.B, Nkv, o.P, H]) : "",
    o.P ? f32("pv", [o.B, Nkv, o.P, H]) : "",
    i32("seqlens", o.seqlens),
    i32("total", [o.total]),
  ];
  if (o.rotary) inputs.push(f32("cos", [16, H / 2]), f32("sin", [16, H / 2]));
  const outs = b.opN("GroupQueryAttention", inputs, attrs, { outputs: 3, domain: "com.microsoft" });
  for (const out of outs) b.output(out, "float32");
  return { graph: b.build(), feeds };
}

test("webgpu GroupQueryAttention: prompt, decode, ragged past, packed QKV, scale, rotary — output and present vs onnxruntime", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const cases: [Record<string, number>, Parameters<typeof gqaCase>[1]][] = [
    [
      { num_heads: 4, kv_num_heads: 2 },
      { B: 2, S: 4, P: 0, seqlens: [3, 3], total: 4 },
    ],
    [
      { num_heads: 4, kv_num_heads: 2 },
      { B: 2, S: 1, P: 5, seqlens: [5, 5], total: 6 },
    ],
    [
      { num_heads: 4, kv_num_heads: 1 },
      { B: 2, S: 1, P: 5, seqlens: [3, 5], total: 6 },
    ],
    [
      { num_heads: 2, kv_num_heads: 2 },
      { B: 1, S: 2, P: 3, seqlens: [4], total: 5 },
    ],
    [
      { num_heads: 4, kv_num_heads: 2 },
      { B: 2, S: 1, P: 3, seqlens: [3, 2], total: 4, packed: true },
    ],
    [
      { num_heads: 4, kv_num_heads: 2, scale: 0.3 },
      { B: 1, S: 5, P: 0, seqlens: [4], total: 5 },
    ],
  ];
  let seed = 60;
  for (const [attrs, o] of cases) {
    const { graph, feeds } = gqaCase(attrs, o, seed);
    seed += 10;
    await compare(graph, feeds);
  }
});
