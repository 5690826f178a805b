import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { runGraph } from "../src/engine/executor.js";
import { floatAttr, GraphBuilder } from "../src/ir/builder.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { optimizeGraph, summarizeReport } from "../src/passes/index.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { maxAbsDiff } from "./support/compare.js";

// GraphBuilder-made attention blocks in the export styles the rule set must recognise. Each variant is
// fused, run, and compared with the unfused graph on the same random feeds; negative variants must stay
// unfused with a reason.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function randomTensor(dims: number[], r: () => number, scale = 1): Tensor<"float32"> {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = r() * scale;
  return new Tensor("float32", data, dims);
}

interface Variant {
  B?: number;
  Sq?: number;
  Skv?: number;
  N?: number;
  Nkv?: number;
  H?: number;
  cross?: boolean;
  /** "mul": scores·(1/√H); "div": scores/√H; "sdpa": Q and Kᵀ each ·H^-¼ with the IsNaN guard; "none". */
  scale?: "mul" | "div" | "sdpa" | "none";
  mask?: boolean;
  causal?: "trilu" | "range";
  relBias?: boolean;
  gqa?: "expand" | "tile";
  /**
   * Rotate-half rotary on Q and K with per-position cos/sin constants [S, d]: "full" (d = H), "partial"
   * (d = H/2, the rest of each head passes through), "unequal" (cos/sin halves differ: not foldable),
   * "positions" (HF's form: Cos/Sin(Concat(f, f)) of a position_ids input [B,S], different per sequence),
   * "gather" (older exports: Gather(constant cos/sin cache [64, d], position_ids [B,S]), Unsqueeze(1)),
   * "interleaved" (GPT-J: rotate_every_two on partial rotary d = H/2, cos/sin = Cos/Sin of
   * repeat_interleave(angles, 2) as exported: Unsqueeze + Expand + Reshape), "gptj" (the same applied to
   * [B,S,N,H] before the head transpose, cos/sin [S,1,d]).
   */
  rotary?: "full" | "partial" | "unequal" | "positions" | "gather" | "interleaved" | "gptj";
  dropout?: boolean;
  /** torch.onnx dynamo style: opset 18, Kᵀ as Transpose(perm [0,1,3,2]) of the head split, boolean mask through Where(−inf). */
  dynamo?: boolean;
  // negatives
  softmaxAxis?: number;
  runtimeScale?: boolean;
  maskAfterSoftmax?: boolean;
}

function build(v: Variant): { graph: Graph; feeds: Record<string, Tensor> } {
  const { B = 2, Sq = 5, N = 4, H = 8 } = v;
  const Skv = v.cross ? (v.Skv ?? 7) : Sq;
  const Nkv = v.Nkv ?? N;
  const E = N * H;
  const r = rng(7);
  const b = new GraphBuilder({ opset: v.dynamo ? 18 : 17 });
  const feeds: Record<string, Tensor> = {};
  const x = b.input("x", "float32", ["batch", "seq", E]);
  feeds.x = randomTensor([B, Sq, E], r, 2);
  let kvSource = x;
  if (v.cross) {
    kvSource = b.input("enc", "float32", ["batch", "enc_seq", E]);
    feeds.enc = randomTensor([B, Skv, E], r, 2);
  }
  const proj = (input: string, heads: number) => {
    const w = b.init(randomTensor([E, heads * H], r, 0.5));
    const bias = b.init(randomTensor([heads * H], r, 0.2));
    const lin = b.op("Add", [bias, b.op("MatMul", [input, w])]);
    return b.op("Reshape", [lin, b.const("int64", [0, 0, heads, H])]);
  };
  const qSplit = proj(x, N);
  let q = b.op("Transpose", [qSplit], { perm: [0, 2, 1, 3] });
  const kSplit = proj(kvSource, Nkv);
  let v4 = b.op("Transpose", [proj(kvSource, Nkv)], { perm: [0, 2, 1, 3] });
  let kT: string;
  const repeat = (t: string) => {
    const u = b.op("Unsqueeze", [t, b.const("int64", [2])]);
    const rep = N / Nkv;
    const expanded =
      v.gqa === "tile"
        ? b.op("Tile", [u, b.const("int64", [1, 1, rep, 1, 1])])
        : b.op("Expand", [u, b.const("int64", [B, Nkv, rep, Skv, H])]);
    return b.op("Reshape", [expanded, b.const("int64", [B, N, Skv, H])]);
  };
  if (v.gqa || v.rotary || v.dynamo) {
    let k4 = b.op("Transpose", [kSplit], { perm: [0, 2, 1, 3] });
    if (v.rotary) {
      const interleaved = v.rotary === "interleaved" || v.rotary === "gptj";
      const d = v.rotary === "partial" || interleaved ? H / 2 : H;
      const half = d / 2;
      let emb: string | undefined;
      let pos: string | undefined;
      if (v.rotary === "positions" || v.rotary === "gather") {
        pos = b.input("position_ids", "int64", ["batch", "seq"]);
        feeds.position_ids = new Tensor(
          "int64",
          Array.from({ length: B * Sq }, (_, i) => 3 * Math.floor(i / Sq) + (i % Sq)),
          [B, Sq],
        );
      }
      if (v.rotary === "positions" && pos) {
        const invFreq = Array.from({ length: half }, (_, i) => 1 / 10000 ** ((2 * i) / d));
        const freqs = b.op("Mul", [
          b.op("Unsqueeze", [b.op("Cast", [pos], { to: 1 }), b.const("int64", [2])]),
          b.init(new Tensor("float32", invFreq, [half])),
        ]);
        emb = b.op("Concat", [freqs, freqs], { axis: -1 });
      }
      const angles = (len: number, fn: (x: number) => number) => {
        if (interleaved) {
          // angles[p, j] = p / 10000^(2j/d): one per pair, repeated for its two elements.
          const table = Float32Array.from(
            { length: len * half },
            (_, i) => Math.floor(i / half) / 10000 ** ((2 * (i % half)) / d),
          );
          const pairs = b.op("Expand", [
            b.op("Unsqueeze", [b.init(new Tensor("float32", table, [len, half])), b.const("int64", [2])]),
            b.const("int64", [1, 1, 2]),
          ]);
          const repeated = b.op("Reshape", [pairs, b.const("int64", [len, d])]);
          const angle = b.op(fn === Math.cos ? "Cos" : "Sin", [repeated]);
          // [S,1,d] against [B,S,N,d] for GPT-J's token-major rotation.
          return v.rotary === "gptj" ? b.op("Unsqueeze", [angle, b.const("int64", [1])]) : angle;
        }
        if (emb)
          return b.op("Unsqueeze", [b.op(fn === Math.cos ? "Cos" : "Sin", [emb]), b.const("int64", [1])]);
        const cacheRows = v.rotary === "gather" ? 64 : len;
        const data = new Float32Array(cacheRows * d);
        for (let p = 0; p < cacheRows; p++)
          for (let i = 0; i < d; i++) {
            // "unequal": the second half's angles are offset, so the halves of a row differ.
            const shift = v.rotary === "unequal" && i >= half ? 0.3 : 0;
            data[p * d + i] = fn(p / 10000 ** ((2 * (i % half)) / d) + shift);
          }
        const table = b.init(new Tensor("float32", data, [cacheRows, d]));
        if (v.rotary !== "gather" || !pos) return table;
        return b.op("Unsqueeze", [b.op("Gather", [table, pos], { axis: 0 }), b.const("int64", [1])]);
      };
      const slice = (t: string, from: number, to: number) =>
        b.op("Slice", [t, b.const("int64", [from]), b.const("int64", [to]), b.const("int64", [3])]);
      const everyOther = (t: string, from: number) =>
        b.op("Slice", [t, ...[[from], [d], [3], [2]].map((x) => b.const("int64", x))]);
      const rotateEveryTwo = (t: string) => {
        const odd = b.op("Unsqueeze", [b.op("Neg", [everyOther(t, 1)]), b.const("int64", [4])]);
        const even = b.op("Unsqueeze", [everyOther(t, 0), b.const("int64", [4])]);
        const stacked = b.op("Concat", [odd, even], { axis: -1 });
        return b.op("Reshape", [stacked, b.const("int64", [0, 0, 0, d])]);
      };
      const rotate = (t: string, len: number) => {
        const part = d < H ? slice(t, 0, d) : t;
        const x1 = slice(part, 0, half);
        const x2 = slice(part, half, d);
        const rotated = interleaved
          ? rotateEveryTwo(part)
          : b.op("Concat", [b.op("Neg", [x2]), x1], { axis: 3 });
        const out = b.op("Add", [
          b.op("Mul", [part, angles(len, Math.cos)]),
          b.op("Mul", [rotated, angles(len, Math.sin)]),
        ]);
        return d < H ? b.op("Concat", [out, slice(t, d, H)], { axis: -1 }) : out;
      };
      if (v.rotary === "gptj") {
        q = b.op("Transpose", [rotate(qSplit, Sq)], { perm: [0, 2, 1, 3] });
        k4 = b.op("Transpose", [rotate(kSplit, Skv)], { perm: [0, 2, 1, 3] });
      } else {
        q = rotate(q, Sq);
        k4 = rotate(k4, Skv);
      }
    }
    if (v.gqa) {
      k4 = repeat(k4);
      v4 = repeat(v4);
    }
    kT = b.op("Transpose", [k4], { perm: [0, 1, 3, 2] });
  } else {
    kT = b.op("Transpose", [kSplit], { perm: [0, 2, 3, 1] });
  }
  const scaleKind = v.scale ?? "mul";
  if (scaleKind === "sdpa") {
    const quarter = b.const("float32", 1 / Math.sqrt(Math.sqrt(H)));
    q = b.op("Mul", [q, quarter]);
    kT = b.op("Mul", [kT, quarter]);
  }
  let scores = b.op("MatMul", [q, kT]);
  if (v.runtimeScale) {
    scores = b.op("Mul", [scores, b.input("temperature", "float32", [])]);
    feeds.temperature = new Tensor("float32", [0.25], []);
  } else if (scaleKind === "mul") scores = b.op("Mul", [scores, b.const("float32", 1 / Math.sqrt(H))]);
  else if (scaleKind === "div") scores = b.op("Div", [scores, b.const("float32", Math.sqrt(H))]);
  if (v.relBias) scores = b.op("Add", [scores, b.init(randomTensor([1, N, Sq, Skv], r, 3))]);
  let maskBias: string | undefined;
  if (v.mask) {
    const m = b.input("attention_mask", "int64", ["batch", v.cross ? "enc_seq" : "seq"]);
    const rows = [];
    for (let i = 0; i < B; i++) for (let j = 0; j < Skv; j++) rows.push(i === 1 && j >= Skv - 2 ? 0 : 1);
    feeds.attention_mask = new Tensor("int64", rows, [B, Skv]);
    if (v.dynamo) {
      const keep = b.op("Unsqueeze", [b.op("Cast", [m], { to: 9 }), b.const("int64", [1, 2])]);
      maskBias = b.op("Where", [keep, b.const("float32", 0), b.const("float32", -Infinity)]);
    } else {
      const inverted = b.op("Sub", [b.const("float32", 1), b.op("Cast", [m], { to: 1 })]);
      const bias = b.op("Mul", [inverted, b.const("float32", -10000)]);
      maskBias = b.op("Unsqueeze", [bias, b.const("int64", [1, 2])]);
    }
    if (!v.maskAfterSoftmax) scores = b.op("Add", [scores, maskBias]);
  }
  if (v.causal === "trilu") {
    const ones = b.init(new Tensor("float32", new Array(Sq * Skv).fill(1), [Sq, Skv]));
    const lower = b.op("Cast", [b.op("Trilu", [ones], { upper: 0 })], { to: 9 });
    scores = b.op("Add", [
      scores,
      b.op("Where", [lower, b.const("float32", 0), b.const("float32", -Infinity)]),
    ]);
  } else if (v.causal === "range") {
    const shape = b.op("Shape", [q]);
    const len = b.op("Gather", [shape, b.const("int64", 2)], { axis: 0 });
    const pos = b.op("Range", [b.const("int64", 0), len, b.const("int64", 1)]);
    const future = b.op("Less", [
      b.op("Unsqueeze", [pos, b.const("int64", [1])]),
      b.op("Unsqueeze", [pos, b.const("int64", [0])]),
    ]);
    scores = b.op("Where", [future, b.const("float32", -3.4028234663852886e38), scores]);
  }
  let probs = b.op("Softmax", [scores], { axis: v.softmaxAxis ?? -1 });
  if (scaleKind === "sdpa") probs = b.op("Where", [b.op("IsNaN", [probs]), b.const("float32", 0), probs]);
  if (v.dropout) probs = b.op("Dropout", [probs, b.const("float32", 0.1)]);
  if (v.maskAfterSoftmax && maskBias) probs = b.op("Add", [probs, maskBias]);
  const ctx = b.op("MatMul", [probs, v4]);
  const merged = b.op("Reshape", [
    b.op("Transpose", [ctx], { perm: [0, 2, 1, 3] }),
    b.const("int64", [0, 0, E]),
  ]);
  const out = b.op("MatMul", [merged, b.init(randomTensor([E, E], r, 0.5))], {}, { outputs: ["y"] });
  b.output(out, "float32");
  return { graph: b.build(), feeds };
}

function fuseAndCompare(v: Variant) {
  const { graph, feeds } = build(v);
  const { graph: fused, report } = optimizeGraph(graph, { level: "all" });
  assert.equal(report.length, 1, summarizeReport(report));
  const block = report[0]!;
  const reference = runGraph(graph, feeds).get("y")!;
  const result = runGraph(fused, feeds).get("y")!;
  return {
    block,
    fused,
    feeds,
    reference,
    result,
    diff: maxAbsDiff(reference, result),
    summary: summarizeReport(report),
  };
}

const fusedOps = (g: Graph) => g.nodes.filter((n) => n.domain === "mhafuse").map((n) => n.opType);

const positive: [string, Variant, { kind: string; path: string; traits?: string[] }][] = [
  [
    "eager self-attention with padding mask (packed)",
    { mask: true },
    { kind: "self", path: "packed-qkv", traits: ["padding-mask"] },
  ],
  [
    "scale by Div, dropout",
    { mask: true, scale: "div", dropout: true },
    { kind: "self", path: "packed-qkv" },
  ],
  [
    "SDPA decomposition with IsNaN guard",
    { mask: true, scale: "sdpa" },
    { kind: "self", path: "packed-qkv" },
  ],
  ["no mask at all (ViT): packed, no lengths", {}, { kind: "self", path: "packed-qkv" }],
  [
    "dynamo opset-18 export: Kᵀ by Transpose, SDPA scaling, boolean mask through Where",
    { dynamo: true, scale: "sdpa", mask: true },
    { kind: "self", path: "packed-qkv", traits: ["padding-mask"] },
  ],
  [
    "relative position bias without scale",
    { scale: "none", relBias: true },
    { kind: "self", path: "attention", traits: ["biased"] },
  ],
  [
    "relative bias and padding mask",
    { relBias: true, mask: true },
    { kind: "self", path: "attention", traits: ["biased"] },
  ],
  ["causal mask from Trilu", { causal: "trilu" }, { kind: "causal", path: "attention" }],
  [
    "causal mask from Range/Less/Where (masked fill)",
    { causal: "range" },
    { kind: "causal", path: "attention" },
  ],
  [
    "causal + padding",
    { causal: "trilu", mask: true },
    { kind: "causal", path: "attention", traits: ["padding-mask"] },
  ],
  [
    "cross-attention Sq≠Skv with encoder mask",
    { cross: true, mask: true, Skv: 7 },
    { kind: "cross", path: "attention" },
  ],
  ["GQA via Expand", { gqa: "expand", Nkv: 2 }, { kind: "self", path: "attention", traits: ["GQA"] }],
  ["GQA via Tile", { gqa: "tile", Nkv: 2, mask: true }, { kind: "self", path: "attention", traits: ["GQA"] }],
  [
    "rotary on Q and K",
    { rotary: "full", causal: "trilu" },
    { kind: "causal", path: "attention", traits: ["rotary"] },
  ],
  [
    "partial rotary (half of each head)",
    { rotary: "partial", causal: "trilu" },
    { kind: "causal", path: "attention", traits: ["rotary"] },
  ],
  [
    "rotary whose cos/sin halves differ (kept as graph nodes)",
    { rotary: "unequal", causal: "trilu" },
    { kind: "causal", path: "attention", traits: ["rotary"] },
  ],
];

for (const [name, variant, want] of positive) {
  test(`fuses: ${name}`, () => {
    const r = fuseAndCompare(variant);
    assert.equal(r.block.fused, true, r.summary);
    assert.equal(r.block.kind, want.kind, r.summary);
    assert.equal(r.block.path, want.path, r.summary);
    for (const t of want.traits ?? [])
      assert.ok(r.block.traits.includes(t as never), `${t} missing: ${r.summary}`);
    const ops = fusedOps(r.fused);
    assert.ok(ops.includes(want.path === "packed-qkv" ? "QKVToContext" : "Attention"), ops.join(","));
    assert.ok(!r.fused.nodes.some((n) => n.opType === "Softmax"), "the Softmax must be gone after fusion");
    assert.ok(r.diff <= 1e-4, `max |diff| ${r.diff}`);
  });
}

/** The fused graph converted for onnxruntime, run there: max |diff| against our run of the unfused graph. */
async function onnxruntimeDiff(
  fused: Graph,
  feeds: Record<string, Tensor>,
  reference: Tensor,
): Promise<number> {
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(toOnnxruntime(fused).graph)));
  const ortFeeds = Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [
      k,
      new ort.Tensor(t.type as "float32", t.data as Float32Array, [...t.dims]),
    ]),
  );
  const y = (await session.run(ortFeeds)).y!;
  return maxAbsDiff(new Tensor("float32", y.data as Float32Array, [...y.dims]), reference);
}

test("rotary folds into one com.microsoft.RotaryEmbedding per Q and K only when its halves provably match", async () => {
  const rotaryNodes = (g: Graph) => g.nodes.filter((n) => n.opType === "RotaryEmbedding");
  for (const [rotary, dim] of [
    ["full", "8 of 8"],
    ["partial", "4 of 8"],
    ["positions", "8 of 8"],
    ["gather", "8 of 8"],
    ["interleaved", "4 of 8"],
    ["gptj", "4 of 8"],
  ] as const) {
    const r = fuseAndCompare({ rotary, causal: "trilu" });
    assert.equal(r.block.rotary, `folded into com.microsoft.RotaryEmbedding on Q, K, rotary dim ${dim}`);
    const nodes = rotaryNodes(r.fused);
    assert.equal(nodes.length, 2, r.summary);
    assert.deepEqual(
      nodes.map((n) => n.attrs.rotary_embedding_dim?.value),
      rotary === "partial" || rotary === "interleaved" || rotary === "gptj" ? [4, 4] : [undefined, undefined],
    );
    assert.deepEqual(
      nodes.map((n) => n.attrs.interleaved?.value),
      rotary === "interleaved" || rotary === "gptj" ? [1, 1] : [0, 0],
    );
    // Per-sequence angles: position ids index the stacked rows of every sequence ([B,S] ids, not an offset).
    const ids = r.fused.nodes.find((n) => n.outputs[0] === nodes[0]!.inputs[1]);
    assert.equal(ids?.opType, rotary === "positions" || rotary === "gather" ? "Reshape" : undefined);
    assert.ok(!r.fused.nodes.some((n) => n.opType === "Neg"), "rotate_half is gone");
    assert.ok(r.diff <= 1e-5, `${rotary}: max |diff| ${r.diff}`);
    // onnxruntime runs the folded RotaryEmbedding (offset or per-sequence position ids) to the same numbers.
    const d = await onnxruntimeDiff(r.fused, r.feeds, r.reference);
    assert.ok(d <= 1e-4, `${rotary} in onnxruntime: max |diff| ${d}`);
  }
  // cos/sin whose halves differ are not a pair-wise rotation: the nodes stay, the block still fuses.
  const r = fuseAndCompare({ rotary: "unequal", causal: "trilu" });
  assert.match(r.block.rotary ?? "", /^kept as graph nodes: Q: rotary cos\/sin .* does not provably repeat/);
  assert.equal(rotaryNodes(r.fused).length, 0);
  assert.ok(r.diff <= 1e-5, `unequal: max |diff| ${r.diff}`);
});

test("GQA keeps the unrepeated K/V heads", () => {
  const r = fuseAndCompare({ gqa: "expand", Nkv: 2, N: 4 });
  const node = r.fused.nodes.find((n) => n.opType === "Attention")!;
  assert.deepEqual([node.attrs.num_heads?.value, node.attrs.kv_num_heads?.value], [4, 2]);
});

test("scale is the product of every constant factor", () => {
  const r = fuseAndCompare({ scale: "sdpa", H: 16 });
  assert.ok(Math.abs(r.block.scale! - 1 / 4) < 1e-6, String(r.block.scale));
  const none = fuseAndCompare({ scale: "none", relBias: true });
  assert.equal(none.block.scale, 1);
});

test("a non-right-padded mask falls back at run time and still matches", () => {
  const { graph, feeds } = build({ mask: true, B: 3 });
  // Row 1 has holes, row 2 is left-padded: neither is a right-padding mask, both take the fallback bias.
  feeds.attention_mask = new Tensor("int64", [1, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1], [3, 5]);
  const { graph: fused, report } = optimizeGraph(graph);
  assert.equal(report[0]!.path, "packed-qkv");
  const d = maxAbsDiff(runGraph(graph, feeds).get("y")!, runGraph(fused, feeds).get("y")!);
  assert.ok(d <= 1e-4, `max |diff| ${d}`);
});

test("a row with no valid token falls back to the bias (uniform over keys, like PyTorch)", () => {
  const { graph, feeds } = build({ mask: true, B: 2 });
  feeds.attention_mask = new Tensor("int64", [1, 1, 1, 0, 0, 0, 0, 0, 0, 0], [2, 5]);
  const { graph: fused } = optimizeGraph(graph);
  // score − 10000 in float32 rounds to ~1e-3, so both graphs only agree to that precision on the empty row.
  const d = maxAbsDiff(runGraph(graph, feeds).get("y")!, runGraph(fused, feeds).get("y")!);
  assert.ok(d <= 2e-3, `max |diff| ${d}`);
});

const negative: [string, Variant, RegExp][] = [
  ["softmax over another axis", { softmaxAxis: 2 }, /axis 2/],
  ["a scale that is not constant", { runtimeScale: true }, /not a scalar constant/],
  ["a mask added after softmax", { mask: true, maskAfterSoftmax: true }, /Add '.*' broke pattern/],
];

for (const [name, variant, reason] of negative) {
  test(`does not fuse: ${name}`, () => {
    const { graph, feeds } = build(variant);
    const { graph: out, report } = optimizeGraph(graph);
    assert.equal(report.length, 1);
    assert.equal(report[0]!.fused, false);
    assert.match(report[0]!.reason ?? "", reason);
    assert.deepEqual(fusedOps(out), []);
    // Not fusing must not change the numbers either.
    const d = maxAbsDiff(runGraph(graph, feeds).get("y")!, runGraph(out, feeds).get("y")!);
    assert.ok(d <= 1e-6, `max |diff| ${d}`);
  });
}

test("fusion is off at basic and disabled levels", () => {
  const { graph } = build({ mask: true });
  for (const level of ["disabled", "basic"] as const) {
    const r = optimizeGraph(graph, { level });
    assert.equal(r.report.length, 0);
    assert.deepEqual(fusedOps(r.graph), []);
  }
  assert.equal(floatAttr(1).type, "float");
});
