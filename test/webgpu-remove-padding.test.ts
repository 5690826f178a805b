/**
 * Padding removal on the webgpu provider (opt-in there: `removePadding: true`): RemovePadding / RestorePadding as
 * device row gathers, the packed op in its var-seqlen form on the flash kernel — every valid token as
 * onnxruntime computes it, padded tokens 0, nothing on the CPU but the host mask arithmetic.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import { Tensor } from "../src/ir/tensor.js";
import { FIXTURES, fixtureCases } from "./helpers.js";
import { maskedDiff } from "./support/compare.js";
import { disposeGpuContext, gpuContext } from "./webgpu-helpers.js";

after(disposeGpuContext);

test("webgpu, removePadding: true — bert_eager on right, left and holed masks matches onnxruntime on every valid token", async (t) => {
  const ctx = await gpuContext();
  if (typeof ctx === "string") return t.skip(ctx);
  const path = `${FIXTURES}onnx/bert_eager.onnx`;
  const session = await InferenceSession.create(path, {
    executionProviders: ["webgpu"],
    removePadding: true,
  });
  const reference = await ort.InferenceSession.create(path);
  try {
    const base = fixtureCases("bert_eager")[1]!.inputs;
    const [B, S] = base.attention_mask!.dims as [number, number];
    const masks: [string, (b: number, s: number) => number][] = [
      ["right padding", (b, s) => (s < S - 4 * b ? 1 : 0)],
      ["left padding", (b, s) => (s >= 3 * b ? 1 : 0)],
      ["holes", (b, s) => ((s + b) % 4 === 1 ? 0 : 1)],
    ];
    for (const [what, m] of masks) {
      const mask = new Tensor(
        "int64",
        Array.from({ length: B * S }, (_, i) => m(Math.floor(i / S), i % S)),
        [B, S],
      );
      const feeds = { ...base, attention_mask: mask };
      const got = await session.run(feeds);
      const removal = session.lastPaddingRemoval;
      assert.ok(removal && !("skipped" in removal), `${what}: ${JSON.stringify(removal)}`);
      const want = await reference.run(
        Object.fromEntries(
          Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor(v.type, v.data, [...v.dims])]),
        ),
      );
      const ref = want.last_hidden_state!;
      const d = maskedDiff(
        got.last_hidden_state!,
        new Tensor("float32", ref.data as Float32Array, ref.dims),
        mask,
      );
      assert.ok(d.valid <= 1e-4, `${what}: max |diff| ${d.valid} on valid tokens`);
      assert.equal(d.padded, 0, `${what}: padded tokens`);
    }
    assert.deepEqual(session.fallbacks(), [], "no op may fall back to the CPU");
  } finally {
    await session.release();
  }
});
