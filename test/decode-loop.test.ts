// A decoding loop on the llama_past fixture (one step of a Llama decoder with a KV cache, GQA, rotary): prefill
// from an empty cache, then 16 single-token steps feeding present → past. The fused session (its attention
// blocks fused into mhafuse.Attention) equals the unfused one step by step, and both agree with onnxruntime.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { InferenceSession } from "../src/engine/session.js";
import { Tensor } from "../src/ir/tensor.js";
import { FIXTURES, maxAbsDiff } from "./helpers.js";

const MODEL = `${FIXTURES}onnx/llama_past.onnx`;
const LAYERS = 2;
const KV_HEADS = 2;
const HEAD = 16;

type Feeds = Record<string, Tensor>;

function stepFeeds(ids: number[], total: number, past: Feeds | undefined, batch = 1): Feeds {
  const feeds: Feeds = {
    input_ids: new Tensor("int64", ids, [batch, ids.length / batch]),
    attention_mask: new Tensor("int64", new Array(batch * total).fill(1), [batch, total]),
  };
  for (let l = 0; l < LAYERS; l++)
    for (const kv of ["key", "value"]) {
      feeds[`past_${kv}_${l}`] =
        past?.[`present_${kv}_${l}`] ??
        new Tensor("float32", new Float32Array(0), [batch, KV_HEADS, 0, HEAD]);
    }
  return feeds;
}

async function ortRun(session: ort.InferenceSession, feeds: Feeds): Promise<Feeds> {
  const out = await session.run(
    Object.fromEntries(
      Object.entries(feeds).map(([k, t]) => [
        k,
        new ort.Tensor(t.type as "float32", t.data as Float32Array, [...t.dims]),
      ]),
    ),
  );
  return Object.fromEntries(
    Object.entries(out).map(([k, t]) => [
      k,
      new Tensor("float32", t.data as Float32Array, [...t.dims].map(Number)),
    ]),
  );
}

test("llama_past: prefill then 16 decoding steps, fused equals unfused step by step, and onnxruntime", async () => {
  const fused = await InferenceSession.create(MODEL, { graphOptimizationLevel: "all" });
  const plain = await InferenceSession.create(MODEL, { graphOptimizationLevel: "disabled" });
  const reference = await ort.InferenceSession.create(MODEL);
  assert.ok(
    fused.attentionReport.length === LAYERS && fused.attentionReport.every((b) => b.fused),
    "every block fused",
  );
  // The cache goes through the fused op (past in, present out), not through graph Concats.
  assert.ok(
    fused.attentionReport.every((b) => b.traits.includes("kv-cache")),
    "every block takes its KV cache",
  );
  const presents = fused.graph.nodes.filter((n) => n.outputs.some((o) => o.startsWith("present_")));
  assert.deepEqual(
    presents.map((n) => `${n.domain}.${n.opType}`),
    Array(LAYERS).fill("mhafuse.Attention"),
  );
  const prompt = [5, 17, 42, 8, 99, 3, 61, 27];
  let pastF: Feeds | undefined;
  let pastP: Feeds | undefined;
  let pastO: Feeds | undefined;
  let next = prompt;
  for (let step = 0; step <= 16; step++) {
    const total = prompt.length + step;
    const a = (await fused.run(stepFeeds(next, total, pastF))) as Feeds;
    const b = (await plain.run(stepFeeds(next, total, pastP))) as Feeds;
    const c = await ortRun(reference, stepFeeds(next, total, pastO));
    for (const name of Object.keys(b)) {
      assert.ok(
        maxAbsDiff(a[name]!, b[name]!) <= 1e-5,
        `step ${step} ${name}: fused vs unfused ${maxAbsDiff(a[name]!, b[name]!)}`,
      );
      assert.ok(
        maxAbsDiff(a[name]!, c[name]!) <= 1e-4,
        `step ${step} ${name}: vs onnxruntime ${maxAbsDiff(a[name]!, c[name]!)}`,
      );
    }
    assert.deepEqual(a.present_key_0!.dims, [1, KV_HEADS, total, HEAD]);
    [pastF, pastP, pastO] = [a, b, c];
    // The next token: a deterministic function of the step's last hidden state (no LM head in this model).
    const h = a.last_hidden_state!.data as Float32Array;
    next = [Math.floor(Math.abs(h[h.length - 1]! * 1000)) % 100];
  }
  fused.release?.();
  plain.release?.();
});
