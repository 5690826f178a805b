/**
 * Automatic padding removal (issue 9 item 3): the pass, its ops, and whole models against onnxruntime-node on
 * masks with right padding, left padding, holes, an all-padding sequence and none.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { buildEngine } from "../src/engine/engine-file.js";
import { InferenceSession } from "../src/engine/session.js";
import { OpError } from "../src/errors.js";
import type { Node } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { loadModelSync, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { cuSeqlensFromMask, removePaddingRows, restorePaddingRows } from "../src/ops/padding.js";
import { optimizeGraph } from "../src/passes/index.js";
import { removePadding } from "../src/passes/remove-padding.js";
import { FIXTURES, fixtureCases, maxAbsDiff, REPO } from "./helpers.js";
import { maskedDiff } from "./support/compare.js";

const NODE: Node = {
  name: "n",
  opType: "RemovePadding",
  domain: "mhafuse",
  inputs: [],
  outputs: [],
  attrs: {},
};

const mask = (rows: number[][]) => new Tensor("int64", rows.flat(), [rows.length, rows[0]!.length]);

test("RemovePadding / RestorePadding / CuSeqlensFromMask: valid rows in batch order, zeros back in place", () => {
  const m = mask([
    [1, 1, 0, 0],
    [0, 1, 1, 1], // left padding
    [1, 0, 1, 0], // holes
  ]);
  const x = new Tensor(
    "float32",
    Array.from({ length: 3 * 4 * 2 }, (_, i) => i + 1),
    [3, 4, 2],
  );
  const packed = removePaddingRows(x, m, NODE);
  assert.deepEqual([...packed.dims], [1, 7, 2]);
  // Tokens (b, s): (0,0) (0,1) (1,1) (1,2) (1,3) (2,0) (2,2) → flat rows 0 1 5 6 7 8 10.
  assert.deepEqual(
    [...(packed.data as Float32Array)],
    [0, 1, 5, 6, 7, 8, 10].flatMap((r) => [2 * r + 1, 2 * r + 2]),
  );
  assert.deepEqual([...cuSeqlensFromMask(m)], [0, 2, 5, 7]);
  const back = restorePaddingRows(packed, m, NODE);
  assert.deepEqual([...back.dims], [3, 4, 2]);
  const data = back.data as Float32Array;
  for (let r = 0; r < 12; r++) {
    const valid = m.getNumber(r) !== 0;
    assert.deepEqual([data[2 * r], data[2 * r + 1]], valid ? [2 * r + 1, 2 * r + 2] : [0, 0]);
  }
  // Every dtype moves as raw elements: int64 and float16 too; an all-padding mask gives T = 0.
  const ids = new Tensor("int64", [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [3, 4]);
  assert.deepEqual(removePaddingRows(ids, m, NODE).toNumbers(), [5, 6, 10, 11, 12, 13, 15]);
  const half = new Tensor("float16", [0.5, 1.5, -2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [3, 4]);
  assert.deepEqual(removePaddingRows(half, m, NODE).toNumbers(), [0.5, 1.5, 5, 6, 7, 8, 10]);
  const none = mask([[0, 0, 0, 0]]);
  assert.deepEqual(
    [
      ...removePaddingRows(
        x.reshape([1, 12, 2]).reshape([3, 4, 2]),
        mask([
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
        ]),
        NODE,
      ).dims,
    ],
    [1, 0, 2],
  );
  assert.deepEqual([...cuSeqlensFromMask(none)], [0, 0]);
});

test("padding ops: wrong shapes are OpErrors naming what was expected", () => {
  const m = mask([[1, 0]]);
  assert.throws(() => removePaddingRows(new Tensor("float32", [1, 2, 3], [1, 3]), m, NODE), OpError);
  assert.throws(
    () => removePaddingRows(new Tensor("float32", [1, 2], [1, 2]), new Tensor("int64", [1, 0], [2]), NODE),
    /2-D/,
  );
  assert.throws(
    () => restorePaddingRows(new Tensor("float32", [1, 2, 3, 4], [1, 2, 2]), m, NODE),
    /T = 1 valid/,
  );
});

async function ortRun(
  path: string | Uint8Array,
  feeds: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const s = await ort.InferenceSession.create(path as string);
  const out = await s.run(
    Object.fromEntries(
      Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type, t.data, [...t.dims])]),
    ),
  );
  return Object.fromEntries(
    Object.entries(out).map(([k, t]) => [k, new Tensor("float32", t.data as Float32Array, t.dims)]),
  );
}

/** Feeds of a fixture case with its attention mask replaced (ids kept). */
function withMask(feeds: Record<string, Tensor>, rows: number[][]): Record<string, Tensor> {
  const [B, S] = feeds.attention_mask!.dims as [number, number];
  const m = Array.from({ length: B }, (_, b) =>
    Array.from({ length: S }, (_, s) => rows[b % rows.length]![s] ?? 1),
  );
  return { ...feeds, attention_mask: mask(m) };
}

const patterns = (S: number): [string, number[][]][] => [
  ["right padding", [Array.from({ length: S }, (_, s) => (s < S - 5 ? 1 : 0)), Array(S).fill(1)]],
  ["left padding", [Array.from({ length: S }, (_, s) => (s < 4 ? 0 : 1)), Array(S).fill(1)]],
  [
    "holes",
    [
      Array.from({ length: S }, (_, s) => (s % 3 === 1 ? 0 : 1)),
      Array.from({ length: S }, (_, s) => (s % 5 === 0 ? 0 : 1)),
    ],
  ],
  ["an all-padding sequence", [Array(S).fill(0), Array.from({ length: S }, (_, s) => (s < 3 ? 1 : 0))]],
  ["no padding", [Array(S).fill(1)]],
];

for (const model of ["bert_eager", "bert_sdpa", "distilbert_eager", "bert_ort_fused"]) {
  test(`${model}: padding removed, every valid token matches onnxruntime and padded tokens are 0`, async () => {
    const path = `${FIXTURES}onnx/${model}.onnx`;
    const session = await InferenceSession.create(path);
    const base = fixtureCases(model)[1]!.inputs;
    for (const [what, rows] of patterns(base.attention_mask!.dims[1]!)) {
      const feeds = withMask(base, rows);
      const want = await ortRun(path, feeds);
      const got = await session.run(feeds);
      const removal = session.lastPaddingRemoval;
      if (what === "no padding")
        // Nothing to remove: the batch runs the graph as is (same prepared signature, its dense twin).
        assert.match(JSON.stringify(removal), /no padding in this batch: 'attention_mask' has no zero/);
      else assert.ok(removal && !("skipped" in removal), `${what}: ${JSON.stringify(removal)}`);
      const d = maskedDiff(got.last_hidden_state!, want.last_hidden_state!, feeds.attention_mask!);
      assert.ok(d.valid <= 1e-4, `${model} ${what}: max |diff| ${d.valid} on valid tokens`);
      assert.equal(d.padded, 0, `${model} ${what}: padded tokens`);
      const firstValid = rows.every((r) => r[0] !== 0);
      if (want.pooler_output && firstValid) {
        // The pooler reads token 0: exact where token 0 is valid (where it is padding it reads the 0 there).
        assert.ok(maxAbsDiff(got.pooler_output!, want.pooler_output!) <= 1e-4, `${model} ${what}: pooler`);
      }
    }
  });
}

for (const model of ["bert_eager", "bert_sdpa", "distilbert_eager"]) {
  test(`${model}: a mask value other than 0 and 1 is no key mask — the model's own mask bias runs, as in onnxruntime`, async () => {
    const path = `${FIXTURES}onnx/${model}.onnx`;
    const session = await InferenceSession.create(path);
    const base = fixtureCases(model)[1]!.inputs;
    const S = base.attention_mask!.dims[1]!;
    // Row 0: a 2 among ones and right padding (the model adds (1 − 2)·min there, a huge positive bias).
    const rows = [Array.from({ length: S }, (_, s) => (s === 1 ? 2 : s < S - 3 ? 1 : 0)), Array(S).fill(1)];
    const feeds = withMask(base, rows);
    const want = await ortRun(path, feeds);
    const got = await session.run(feeds);
    assert.match(JSON.stringify(session.lastPaddingRemoval), /holds values other than 0 and 1/);
    // Every position, padded ones included, is the unfused model's number.
    const d = maxAbsDiff(got.last_hidden_state!, want.last_hidden_state!);
    assert.ok(d <= 1e-4, `${model}: max |diff| ${d}`);
  });
}

test("bart: the encoder runs on valid tokens, the decoder's output (cross-attention to a padded encoder) is exact everywhere", async () => {
  for (const model of ["bart_eager", "bart_sdpa"]) {
    const path = `${FIXTURES}onnx/${model}.onnx`;
    const session = await InferenceSession.create(path);
    const base = fixtureCases(model)[0]!.inputs;
    for (const [what, rows] of patterns(base.attention_mask!.dims[1]!).slice(0, 3)) {
      const feeds = withMask(base, rows);
      const want = await ortRun(path, feeds);
      const got = await session.run(feeds);
      const removal = session.lastPaddingRemoval;
      assert.ok(removal && !("skipped" in removal));
      // Decoder tokens are not encoder tokens: the whole [B, S_dec, E] output is compared.
      const diff = maxAbsDiff(got.last_hidden_state!, want.last_hidden_state!);
      assert.ok(diff <= 1e-4, `${model} ${what}: ${diff}`);
    }
  }
});

test("generated BERT, seeded random lengths: padding removal equals onnxruntime on every valid token", async () => {
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const graph = buildBertGraph({ layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 100 });
  const bytes = saveModel(modelFromGraph(graph));
  const session = InferenceSession.fromGraph(graph);
  for (let trial = 0; trial < 4; trial++) {
    const S = 8 + Math.floor(rand() * 24);
    const lengths = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => 1 + Math.floor(rand() * S));
    const feeds = bertInputs(lengths, S, 100);
    const want = await ortRun(bytes, feeds);
    const got = await session.run(feeds);
    const d = maskedDiff(got.last_hidden_state!, want.last_hidden_state!, feeds.attention_mask!);
    assert.ok(d.valid <= 1e-4 && d.padded === 0, `lengths ${lengths} S ${S}: ${JSON.stringify(d)}`);
  }
});

test("an engine file (.mhaf) gets padding removal at run time like the ONNX model", async () => {
  const fromEngine = await InferenceSession.create(
    buildEngine(loadModelSync(`${FIXTURES}onnx/bert_eager.onnx`)),
  );
  const c = fixtureCases("bert_eager")[1]!;
  const got = await fromEngine.run(c.inputs);
  assert.ok(fromEngine.lastPaddingRemoval && !("skipped" in fromEngine.lastPaddingRemoval));
  const d = maskedDiff(got.last_hidden_state!, c.outputs.last_hidden_state!, c.inputs.attention_mask!);
  assert.ok(d.valid <= 1e-4 && d.padded === 0, JSON.stringify(d));
});

test("the rewritten graph: one gather, the packed op in var-seqlen form, no Transpose or Flatten left", () => {
  const g = optimizeGraph(loadModelSync(`${FIXTURES}onnx/bert_eager.onnx`).graph).graph;
  const r = removePadding(g, { input_ids: [2, 16], token_type_ids: [2, 16], attention_mask: [2, 16] });
  assert.ok(!("skipped" in r), JSON.stringify(r));
  const count = (op: string) => r.graph.nodes.filter((n) => n.opType === op).length;
  assert.equal(count("RemovePadding"), 1);
  assert.equal(count("CuSeqlensFromMask"), 1);
  assert.deepEqual(r.exits, ["last_hidden_state"]);
  assert.equal(count("Transpose"), 0);
  assert.equal(count("Flatten"), 0);
  const packed = r.graph.nodes.filter((n) => n.opType === "QKVToContext");
  assert.equal(packed.length, 2);
  for (const n of packed) assert.deepEqual(n.attrs.var_seqlen, { type: "int", value: 1 });
});

test("padding removal is skipped, with the reason, where it does not apply; off on request and in verify mode", async () => {
  const decoder = optimizeGraph(loadModelSync(`${FIXTURES}onnx/llama_past.onnx`).graph).graph;
  const r = removePadding(decoder, {});
  assert.ok("skipped" in r && /packed attention/.test(r.skipped));
  const path = `${FIXTURES}onnx/bert_eager.onnx`;
  const c = fixtureCases("bert_eager")[1]!;
  for (const options of [
    { removePadding: false },
    { verify: true },
    { graphOptimizationLevel: "disabled" as const },
  ]) {
    const s = await InferenceSession.create(path, options);
    const got = await s.run(c.inputs);
    assert.equal(s.lastPaddingRemoval, undefined, JSON.stringify(options));
    assert.ok(maxAbsDiff(got.last_hidden_state!, c.outputs.last_hidden_state!) <= 1e-4);
  }
  await assert.rejects(
    InferenceSession.create(path, { removePadding: "yes" as unknown as boolean }),
    /removePadding/,
  );
});

test("CLI: mhafuse run says when padded positions are 0, and --no-remove-padding computes them", () => {
  const run = (...extra: string[]) =>
    spawnSync(
      process.execPath,
      [
        `${REPO}dist/cli/main.js`,
        "run",
        `${FIXTURES}onnx/bert_eager.onnx`,
        "--inputs",
        `${FIXTURES}onnx/bert_eager.io.json`,
        "--case",
        "1",
        ...extra,
      ],
      { encoding: "utf8" },
    );
  const on = run();
  assert.equal(on.status, 0, on.stderr);
  assert.match(on.stderr, /padding removal: 9 of 111 tokens are padding; last_hidden_state hold 0/);
  const off = run("--no-remove-padding");
  assert.equal(off.status, 0, off.stderr);
  assert.doesNotMatch(off.stderr, /padding removal/);
});
