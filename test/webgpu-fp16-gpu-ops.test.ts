/**
 * fp16 mode (issue 11) with the general-op GPU kernels of issue 10: the decoder fixtures run fused with
 * precision "fp16" on the webgpu backend with mhafuse.Attention on the f16 flash kernel (f16 Q, K, V and
 * caches; llama_past's KV cache appended in it; tensor cores where the device has them), the folded
 * com.microsoft.RotaryEmbedding (an `f32Storage` kernel) and RMSNorm's Pow / ReduceMean, the rotary caches' Cos /
 * Sin / Slice / Concat on the device — no CPU fallback — within the fp16 bound of test/webgpu-precision.test.ts. The host
 * work of issue 10 (shape-chain cache, deferred fallback mask bias) and per-kernel profiling in fp16 mode, and
 * the f16 paths of the copy, Pow and row-mean kernels against exact expectations.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import type { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { powScalar, stridedCopy } from "../src/backends/webgpu/kernels/layout.js";
import { rowMean } from "../src/backends/webgpu/kernels/norm.js";
import { fromF16, toF16 } from "../src/backends/webgpu/precision.js";
import { planGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { FIXTURES, fixtureCases } from "./support/fixtures.js";
import { rand, webgpuUnavailable } from "./webgpu-helpers.js";

const MAX_ABS = 1e-2;
const MAX_REL = 2e-3;

let f16Ctx: Promise<WebGpuContext | string> | undefined;
/** A context made as fp16 sessions make theirs (Dawn's unsafe toggles), or why WebGPU is unavailable. */
function f16Context(): Promise<WebGpuContext | string> {
  f16Ctx ??= WebGpuContext.create({ unsafeF16: true }).catch((e: unknown) => {
    const reason = webgpuUnavailable(e);
    if (reason !== undefined) return reason;
    throw e;
  });
  return f16Ctx;
}

const fp16 = new WebGpuBackend({ precision: "fp16" });
const fp32 = new WebGpuBackend();
after(async () => {
  await fp16.dispose();
  await fp32.dispose();
  const c = await f16Context();
  if (c instanceof WebGpuContext) c.dispose();
});

/** Max |diff| and ‖diff‖₂ / ‖ref‖₂ over every output of a run. */
function compare(got: Record<string, Tensor>, want: Record<string, Tensor>): { abs: number; rel: number } {
  let abs = 0;
  let err2 = 0;
  let ref2 = 0;
  for (const [k, w] of Object.entries(want)) {
    const g = got[k]!.data as Float32Array;
    const wd = w.data as Float32Array;
    assert.equal(g.length, wd.length, `${k}: size`);
    for (let i = 0; i < wd.length; i++) {
      const d = g[i]! - wd[i]!;
      abs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(abs, Math.abs(d));
      err2 += d * d;
      ref2 += wd[i]! * wd[i]!;
    }
  }
  return { abs, rel: Math.sqrt(err2 / ref2) };
}

async function prepareFp16(name: string, backend = fp16) {
  const model = await loadModel(`${FIXTURES}onnx/${name}.onnx`);
  const { graph } = optimizeGraph(model.graph, { level: "all" });
  const prepared = (await backend.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
  return { graph, prepared };
}

/**
 * `f` on an fp16 backend of its own, disposed after: its pipeline cache then holds only the kernels `f`'s graph
 * compiled, so a check of which kernel ran is about that graph alone.
 */
async function withOwnFp16<T>(f: (backend: WebGpuBackend) => Promise<T>): Promise<T> {
  const backend = new WebGpuBackend({ precision: "fp16" });
  try {
    return await f(backend);
  } finally {
    await backend.dispose();
  }
}

for (const name of ["llama_past", "qwen3_sdpa", "phi3_eager", "gpt_neox_sdpa"]) {
  test(`webgpu fp16: ${name} fused, attention, rotary and the RMSNorm ops on the GPU, within the fp16 bound`, async (t) => {
    const ctx = await f16Context();
    if (typeof ctx === "string") return t.skip(ctx);
    if (!ctx.f16?.shaderF16) return t.skip("no shader-f16: fp16 runs fp32");
    await withOwnFp16(async (backend) => {
      const { graph, prepared } = await prepareFp16(name, backend);
      const attention = graph.nodes.filter((n) => n.domain === "mhafuse" && n.opType === "Attention");
      assert.ok(attention.length > 0, `${name}: fusion produced no mhafuse.Attention`);
      const rotary = graph.nodes.filter(
        (n) => n.domain === "com.microsoft" && n.opType === "RotaryEmbedding",
      );
      assert.ok(rotary.length > 0, `${name}: fusion folded no rotary into RotaryEmbedding`);
      for (const c of fixtureCases(name)) {
        const { abs, rel } = compare(await prepared.run(c.inputs, Object.keys(c.outputs)), c.outputs);
        t.diagnostic(`max |diff| ${abs.toExponential(2)}, rel ${rel.toExponential(2)}`);
        assert.ok(abs <= MAX_ABS, `${name}: max |diff| ${abs}`);
        assert.ok(rel <= MAX_REL, `${name}: relative error ${rel}`);
        assert.ok(abs > 1e-4, `${name}: max |diff| ${abs}: fp16 mode did not run in f16`);
      }
      assert.deepEqual([...prepared.fallbacks.values()], []);
      for (const n of [...attention, ...rotary])
        assert.ok(prepared.onDevice.has(n.name), `${n.name} did not run on the GPU`);
      // Where the device has tensor cores (the H200), the causal, masked general op ran on them.
      const gpu = await backend.context();
      if (gpu.f16?.syntax && process.env.MHAFUSE_TC_ATTENTION !== "0")
        assert.ok(
          gpu.pipelines.keys().some((k) => k.startsWith("flash-tc:") && k.includes(":causal")),
          `${name}: no causal tensor-core attention kernel ran`,
        );
      // The RMSNorm decoders' norms (fused into SimplifiedLayerNormalization) and glue (the rotary's own
      // Cos / Sin / Slice / Concat computing its cache).
      if (name === "llama_past" || name === "qwen3_sdpa")
        for (const op of ["SimplifiedLayerNormalization", "Cos", "Sin", "Slice", "Concat"])
          assert.ok(
            graph.nodes.some((n) => n.opType === op && n.domain === "" && prepared.onDevice.has(n.name)),
            `${name}: no ${op} ran on the GPU`,
          );
    });
  });
}

test("webgpu fp16: shape-chain cache, deferred fallback mask bias and profiling work in fp16 mode", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.f16?.shaderF16) return t.skip("no shader-f16: fp16 runs fp32");
  const { prepared } = await prepareFp16("bert_eager");
  const [small, large] = fixtureCases("bert_eager");
  const names = Object.keys(small!.outputs);
  const sig = prepared.shapeCache.key(small!.inputs);
  const first = compare(await prepared.run(small!.inputs, names), small!.outputs);
  const cached = prepared.shapeCache.size(sig);
  assert.ok(cached > 0, "no shape-chain step cached");
  assert.ok(first.abs <= MAX_ABS && first.rel <= MAX_REL, `first run: ${first.abs} / ${first.rel}`);
  // Cache hit, profiled: the same outputs within the bound; GPU times tagged with nodes where timestamps exist.
  const again = compare(await prepared.run(small!.inputs, names, { profile: true }), small!.outputs);
  assert.ok(again.abs <= MAX_ABS && again.rel <= MAX_REL, `cached run: ${again.abs} / ${again.rel}`);
  assert.equal(prepared.shapeCache.size(sig), cached);
  if ((await fp16.context()).gpu.features.timestampQuery) {
    assert.ok(prepared.lastProfile.length > 0, "profiled run recorded no kernel times");
    assert.ok(prepared.lastProfile.some((k) => k.node !== undefined && k.ns >= 0));
  } else t.diagnostic("no timestamp-query: profile empty");
  // A right-padded batch leaves the packed op's fallback bias unbuilt in fp16 mode too.
  assert.ok(prepared.skippedLastRun > 0, "the deferred fallback mask bias ran for right-padded rows");
  const other = compare(await prepared.run(large!.inputs, names), large!.outputs);
  assert.ok(other.abs <= MAX_ABS && other.rel <= MAX_REL, `other dims: ${other.abs} / ${other.rel}`);
  assert.deepEqual([...prepared.fallbacks.values()], []);
});

test("webgpu f16 storage: strided copy moves f16 bits, Pow and row mean read f16 and compute in f32", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.f16?.shaderF16) return t.skip("no shader-f16");
  const rows = 3;
  const width = 10;
  const n = rows * width;
  const x = Float32Array.from({ length: n }, (_, i) => ((i * 37) % 23) / 4 - 2.5); // exact in f16
  const xh = { buffer: ctx.pool.upload(toF16(x)), dims: [rows, width], f16: true };
  // Slice columns 2..7 step 2 of every row, as f16 → f16.
  const cols = [2, 4, 6];
  const sliced = ctx.pool.acquire(2 * rows * cols.length + 4);
  const pow = { buffer: ctx.pool.acquire(4 * n), dims: [rows, width] };
  const mean = { buffer: ctx.pool.acquire(2 * rows + 4), dims: [rows], f16: true };
  const rec = ctx.recorder();
  stridedCopy(
    ctx,
    rec,
    [rows, cols.length],
    xh.buffer,
    { offset: 2, strides: [width, 2] },
    sliced,
    { offset: 0, strides: [cols.length, 1] },
    "test.Slice",
    true,
  );
  powScalar(ctx, rec, xh, 3, pow);
  rowMean(ctx, rec, xh, rows, width, mean);
  await rec.submit();
  const s = fromF16(
    new Uint16Array(await ctx.pool.readback(sliced, 2 * rows * cols.length)),
    rows * cols.length,
  );
  assert.deepEqual(
    Array.from(s),
    Array.from({ length: rows * cols.length }, (_, i) => x[Math.floor(i / 3) * width + cols[i % 3]!]!),
  );
  const p = new Float32Array(await ctx.pool.readback(pow.buffer, 4 * n));
  for (let i = 0; i < n; i++)
    assert.ok(Math.abs(p[i]! - x[i]! ** 3) <= 1e-5 * Math.max(1, Math.abs(x[i]! ** 3)));
  const m = fromF16(new Uint16Array(await ctx.pool.readback(mean.buffer, 2 * rows)), rows);
  for (let r = 0; r < rows; r++) {
    const want = x.subarray(r * width, (r + 1) * width).reduce((a, b) => a + b, 0) / width;
    assert.ok(Math.abs(m[r]! - want) <= 2e-3 * Math.max(1, Math.abs(want)), `row ${r}: ${m[r]} vs ${want}`);
  }
});

/**
 * x → MatMul projections (f16 outputs in fp16 mode) → one attention op, which reads its f16 inputs as they are
 * (no cast to f32) and runs the f16 flash kernel (SIMT here; tensor cores where the device has them: the
 * emulated test checks that kernel's general-op form). Against the same graph on the fp32 backend.
 */
const B = 2;
const S = 5;
const E = 16;
function projected(
  opset: number,
  op: (b: GraphBuilder, q: string, k: string, v: string, x: string) => string[],
) {
  const b = new GraphBuilder({ opset });
  const x = b.input("x", "float32", [B, S, E]);
  const w = (seed: number, n = E) => b.init(new Tensor("float32", rand(E * n, seed, 0.4), [E, n]));
  const [q, k, v] = [1, 2, 3].map((seed) => b.op("MatMul", [x, w(seed)]));
  for (const [i, o] of op(b, q!, k!, v!, x).entries())
    if (o) b.output(o, "float32", i === 0 ? [B, S, E] : undefined);
  return b.build();
}

/** Returns the kernels the graph compiled on its own fp16 backend. */
async function fp16Matches(
  graph: Graph,
  feeds: Record<string, Tensor>,
  attentionOp: string,
): Promise<string[]> {
  const names = graph.outputs.map((o) => o.name);
  const want = await (await fp32.prepare(graph, planGraph(graph))).run(feeds, names);
  return withOwnFp16(async (backend) => {
    const p = (await backend.prepare(graph, planGraph(graph))) as WebGpuPreparedGraph;
    const { abs, rel } = compare(await p.run(feeds, names), want);
    assert.ok(abs <= MAX_ABS && rel <= MAX_REL, `${attentionOp}: max |diff| ${abs}, rel ${rel}`);
    assert.ok(abs > 1e-5, `${attentionOp}: fp16 mode did not run in f16 (${abs})`);
    assert.deepEqual([...p.fallbacks.values()], []);
    const node = graph.nodes.find((n) => n.opType === attentionOp || n.opType === "GroupQueryAttention")!;
    assert.ok(p.onDevice.has(node.name), `${node.name} did not run on the GPU`);
    // The f16 flash kernel ran, and no f32 one: the op was not handed f32 copies of its inputs.
    const keys = (await backend.context()).pipelines.keys();
    assert.ok(
      keys.some((k) => k.startsWith("flash-f16:") || k.startsWith("flash-tc:")),
      `${attentionOp}: no f16 flash kernel compiled (${keys.filter((k) => k.startsWith("flash")).join(", ")})`,
    );
    assert.ok(
      !keys.some((k) => k.startsWith("flash:")),
      `${attentionOp}: an f32 flash kernel ran in fp16 mode`,
    );
    return keys;
  });
}

test("webgpu fp16: MultiHeadAttention, Attention-23, com.microsoft.Attention and GQA read f16 producers", async (t) => {
  const ctx = await f16Context();
  if (typeof ctx === "string") return t.skip(ctx);
  if (!ctx.f16?.shaderF16) return t.skip("no shader-f16");
  const feeds = { x: new Tensor("float32", rand(B * S * E, 7), [B, S, E]) };
  const ms = { domain: "com.microsoft" };
  await fp16Matches(
    projected(17, (b, q, k, v) => [b.op("MultiHeadAttention", [q, k, v], { num_heads: 2 }, ms)]),
    feeds,
    "MultiHeadAttention",
  );
  await fp16Matches(
    projected(23, (b, q, k, v) => [
      b.op("Attention", [q, k, v], { q_num_heads: 2, kv_num_heads: 2, is_causal: 1 }),
    ]),
    feeds,
    "Attention",
  );
  await fp16Matches(
    projected(17, (b, q, _k, _v) => {
      const w = b.init(new Tensor("float32", rand(E * 3 * E, 11, 0.4), [E, 3 * E]));
      const bias = b.init(new Tensor("float32", rand(3 * E, 12, 0.1), [3 * E]));
      return [b.op("Attention", [q, w, bias], { num_heads: 2, unidirectional: 1 }, ms)];
    }),
    feeds,
    "Attention",
  );
  // GroupQueryAttention, a prompt (no past): K/V with 2 of 4 heads' width from their own projections.
  const gqa = projected(17, (b, q, _k, _v, x) => {
    const kv = (seed: number) =>
      b.op("MatMul", [x, b.init(new Tensor("float32", rand(E * (E / 2), seed, 0.4), [E, E / 2]))]);
    const seqlens = b.init(new Tensor("int32", Array(B).fill(S - 1), [B]));
    const total = b.init(new Tensor("int32", [S], []));
    return b.opN(
      "GroupQueryAttention",
      [q, kv(21), kv(22), "", "", seqlens, total],
      { num_heads: 4, kv_num_heads: 2 },
      { ...ms, outputs: 3 },
    );
  });
  await fp16Matches(gqa, feeds, "GroupQueryAttention");
  // With do_rotary: Q and the new K rows rotated in f16 storage (f32 caches), past rows from a KV cache.
  const H = E / 4;
  const P = 3;
  const rotaryGqa = projected(17, (b, q, _k, _v, x) => {
    const kv = (seed: number) =>
      b.op("MatMul", [x, b.init(new Tensor("float32", rand(E * (E / 2), seed, 0.4), [E, E / 2]))]);
    const past = (seed: number) =>
      b.init(new Tensor("float32", rand(B * 2 * P * H, seed, 0.5), [B, 2, P, H]));
    const seqlens = b.init(new Tensor("int32", [P + S - 1, P + S - 3], [B]));
    const total = b.init(new Tensor("int32", [P + S], []));
    const positions = P + S + 2;
    const angle = (i: number, j: number) => i / 10000 ** ((2 * j) / H);
    const cache = (f: (x: number) => number) =>
      b.init(
        new Tensor(
          "float32",
          Float32Array.from({ length: positions * (H / 2) }, (_, k) =>
            f(angle(Math.floor(k / (H / 2)), k % (H / 2))),
          ),
          [positions, H / 2],
        ),
      );
    return b.opN(
      "GroupQueryAttention",
      [q, kv(31), kv(32), past(33), past(34), seqlens, total, cache(Math.cos), cache(Math.sin)],
      { num_heads: 4, kv_num_heads: 2, do_rotary: 1 },
      { ...ms, outputs: 3 },
    );
  });
  const rotaryKeys = await fp16Matches(rotaryGqa, feeds, "GroupQueryAttention");
  assert.ok(
    rotaryKeys.some((k) => k.startsWith("rotary:") && k.endsWith(":h")),
    "GroupQueryAttention's rotary did not run on f16 storage",
  );
});
