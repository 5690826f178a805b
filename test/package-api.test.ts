import assert from "node:assert/strict";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { FIXTURES, fixtureCases, REPO } from "./helpers.js";
import { maskedDiff } from "./support/compare.js";

// The package as users import it: the compiled entry point named by package.json ("mhafuse" → dist/index.js).
const api = (await import(pathToFileURL(`${REPO}dist/index.js`).href)) as typeof import("../src/index.js");

test("the README's API works from the package root", async () => {
  const { InferenceSession, Tensor } = api;
  const session = await InferenceSession.create(`${FIXTURES}onnx/bert_eager.onnx`, {
    graphOptimizationLevel: "all",
  });
  assert.deepEqual(session.inputNames, ["input_ids", "attention_mask", "token_type_ids"]);
  const c = fixtureCases("bert_eager")[0]!;
  const feeds = Object.fromEntries(
    Object.entries(c.inputs).map(([k, t]) => [k, new Tensor(t.type, t.data, [...t.dims])]),
  );
  const { last_hidden_state } = await session.run(feeds);
  // Padding removal is on by default: every valid token as onnxruntime computes it, padded tokens 0.
  const d = maskedDiff(last_hidden_state!, c.outputs.last_hidden_state!, c.inputs.attention_mask!);
  assert.ok(d.valid <= 1e-4 && d.padded === 0, JSON.stringify(d));
  assert.equal(session.attentionReport.length, 2);
  assert.ok(session.attentionReport.every((b) => b.fused));
});

test("the package root exports the library surface", () => {
  for (const name of [
    "InferenceSession",
    "Tensor",
    "loadModel",
    "saveModel",
    "modelFromGraph",
    "qkvToContext",
    "packQkvWeights",
    "unpackQkvWeights",
    "concatToInterleaved",
    "optimizeGraph",
    "toOnnxruntime",
    "GraphBuilder",
    "buildBertGraph",
    "MhafuseError",
  ]) {
    assert.equal(typeof (api as Record<string, unknown>)[name], "function", name);
  }
});
