/**
 * Padding removal over FusedGemms with a residual input: the generated BERT fused without SkipLayerNormalization
 * (fuse-skip-layer-norm disabled), so each residual Add after the attention output and the FFN's second GEMM
 * becomes a FusedGemm's residual. The rewritten graph keeps one gather (the residuals are in the region), and
 * its valid tokens equal onnxruntime-node's on the original graph.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import type { Graph } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { removePadding } from "../src/passes/remove-padding.js";
import { maskedDiff } from "./support/compare.js";

const config = { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 100 };

function fusedWithResiduals(): Graph {
  const { graph } = optimizeGraph(buildBertGraph(config), { disabledPasses: ["fuse-skip-layer-norm"] });
  return graph;
}

const withResidual = (g: Graph) => g.nodes.filter((n) => n.opType === "FusedGemm" && n.inputs[3]);

test("padding removal: FusedGemms with a residual stay inside the region (one gather)", () => {
  const g = fusedWithResiduals();
  assert.equal(withResidual(g).length, 2 * config.layers, "two residual FusedGemms per layer");
  const r = removePadding(g, { input_ids: [2, 16], token_type_ids: [2, 16], attention_mask: [2, 16] });
  assert.ok(!("skipped" in r), JSON.stringify(r));
  const count = (op: string) => r.graph.nodes.filter((n) => n.opType === op).length;
  assert.equal(count("RemovePadding"), 1);
  assert.equal(count("RestorePadding"), 1);
  assert.equal(withResidual(r.graph).length, 2 * config.layers);
});

test("padding removal over residual FusedGemms equals onnxruntime on every valid token, zeros elsewhere", async () => {
  const original = buildBertGraph(config);
  const ortSession = await ort.InferenceSession.create(saveModel(modelFromGraph(original)));
  const session = InferenceSession.fromGraph(fusedWithResiduals(), { intraOpNumThreads: 2 });
  try {
    for (const [lengths, S] of [
      [[16, 9], 16],
      [[3, 11, 1], 12],
    ] as [number[], number][]) {
      const feeds = bertInputs(lengths, S, config.vocab, S);
      const ortFeeds = Object.fromEntries(
        Object.entries(feeds).map(([k, t]: [string, Tensor]) => [
          k,
          new ort.Tensor(t.type, t.data, [...t.dims]),
        ]),
      );
      const o = (await ortSession.run(ortFeeds)).last_hidden_state!;
      const want = new Tensor("float32", o.data as Float32Array, [...o.dims]);
      const got = (await session.run(feeds)).last_hidden_state!;
      assert.ok(session.lastPaddingRemoval && !("skipped" in session.lastPaddingRemoval));
      const d = maskedDiff(got, want, feeds.attention_mask!);
      assert.ok(d.valid <= 1e-4 && d.padded === 0, `lengths ${lengths}: ${JSON.stringify(d)}`);
    }
  } finally {
    await Promise.all([session.release(), ortSession.release()]);
  }
});
