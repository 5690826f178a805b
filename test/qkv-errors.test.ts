import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../src/engine/executor.js";
import { qkvToContext } from "../src/engine/qkv.js";
import { InputError, OpError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { randomTensor } from "./qkv-helpers.js";

const qkv = (dims: number[]) => randomTensor("float32", dims, 5);

function throwsInput(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test("rank: qkv must be [S, B, 3E, 1, 1] or [T, 3E, 1, 1]", () => {
  throwsInput(
    () => qkvToContext(qkv([2, 3, 12]), { numHeads: 2 }),
    /must be \[S, B, 3E, 1, 1\].*got rank 3 \[2, 3, 12\]/,
  );
});

test("trailing dims must be 1, 1", () => {
  throwsInput(
    () => qkvToContext(qkv([2, 3, 12, 2, 1]), { numHeads: 2 }),
    /last two dims of qkv must be 1, 1.*got \[2, 3, 12, 2, 1\]/,
  );
});

test("3E not divisible by 3 names cross-attention, mhafuse.Attention and mhafuse optimize", () => {
  throwsInput(
    () => qkvToContext(qkv([2, 3, 13, 1, 1]), { numHeads: 1 }),
    /13 values per token, not a multiple of 3.*cross-attention.*mhafuse\.Attention.*mhafuse optimize MODEL\.onnx/s,
  );
});

test("E not divisible by num_heads", () => {
  throwsInput(
    () => qkvToContext(qkv([2, 1, 12, 1, 1]), { numHeads: 3 }),
    /E = 4 is not divisible by num_heads = 3/,
  );
});

test("hidden_size must equal E = N·H", () => {
  throwsInput(
    () => qkvToContext(qkv([2, 1, 12, 1, 1]), { numHeads: 2, hiddenSize: 8 }),
    /hidden_size=8 .*E = 4/,
  );
});

test("mask values outside [0, S]", () => {
  throwsInput(
    () => qkvToContext(qkv([4, 2, 12, 1, 1]), { numHeads: 2, mask: [2, 5] }),
    /mask\[1\] = 5 is outside \[0, S = 4\]/,
  );
  throwsInput(
    () => qkvToContext(qkv([4, 2, 12, 1, 1]), { numHeads: 2, mask: [-1, 1] }),
    /mask\[0\] = -1 is outside/,
  );
});

test("mask of the wrong length", () => {
  throwsInput(
    () => qkvToContext(qkv([4, 2, 12, 1, 1]), { numHeads: 2, mask: new Tensor("int32", [1, 2, 3], [3]) }),
    /one length per sequence: int32 \[B\] = \[2\], got 3 values/,
  );
});

test("cu_seqlens must be non-decreasing, start at 0 and end at T", () => {
  const t = qkv([5, 12, 1, 1]);
  throwsInput(
    () => qkvToContext(t, { numHeads: 2, cuSeqlens: [0, 3, 2, 5] }),
    /non-decreasing.*cu_seqlens\[2\] = 2 < cu_seqlens\[1\] = 3/,
  );
  throwsInput(
    () => qkvToContext(t, { numHeads: 2, cuSeqlens: [0, 3, 4] }),
    /must end at T = 5.*got cu_seqlens\[2\] = 4/,
  );
  throwsInput(() => qkvToContext(t, { numHeads: 2, cuSeqlens: [1, 3, 5] }), /must start at 0/);
  throwsInput(
    () => qkvToContext(t, { numHeads: 2, cuSeqlens: [0, 5], maxSeqlen: 4 }),
    /5 tokens but max_seqlen is 4/,
  );
  throwsInput(() => qkvToContext(t, { numHeads: 2 }), /needs cu_seqlens/);
});

test("dtype must be float32 or float16", () => {
  throwsInput(
    () => qkvToContext(new Tensor("int32", new Int32Array(24), [2, 1, 12, 1, 1]), { numHeads: 2 }),
    /float32 or float16, got int32/,
  );
});

test("separate Q/K/V of different lengths get the cross-attention advice", () => {
  const q = qkv([3, 1, 4]);
  const k = qkv([7, 1, 4]);
  throwsInput(
    () => qkvToContext([q, k, k] as unknown as Tensor, { numHeads: 1 }),
    /sequence lengths 3, 7, 7: the packed QKV op needs Q, K and V of one sequence length.*mhafuse\.Attention.*mhafuse optimize/s,
  );
  throwsInput(
    () => qkvToContext({ q, k: q, v: q } as unknown as Tensor, { numHeads: 1 }),
    /one packed tensor.*packQkvWeights/,
  );
});

test("the graph op raises OpError naming the node", () => {
  const b = new GraphBuilder({ opsets: { mhafuse: 1 } });
  const x = b.input("qkv", "float32", [2, 1, 12, 1, 1]);
  const out = b.op(
    "QKVToContext",
    [x],
    { num_heads: 2, hidden_size: 6 },
    { domain: "mhafuse", name: "attn0" },
  );
  b.output(out);
  assert.throws(
    () => runGraph(b.build(), { qkv: qkv([2, 1, 12, 1, 1]) }),
    (e: unknown) => e instanceof OpError && /node 'attn0'.*hidden_size=6/.test(e.message),
  );
});

test("plugin attribute mistakes: has_mask=1 without a mask, int8 type_id, bad plugin_version", () => {
  const build = (attrs: Record<string, number | string>) => {
    const b = new GraphBuilder();
    const x = b.input("qkv", "float32", [2, 1, 12, 1, 1]);
    const required = { type_id: 0, hidden_size: 4, has_mask: 0 };
    const out = b.op("CustomQKVToContextPluginDynamic", [x], { num_heads: 2, ...required, ...attrs });
    b.output(out);
    return () => runGraph(b.build(), { qkv: qkv([2, 1, 12, 1, 1]) });
  };
  assert.throws(build({ has_mask: 1 }), /takes 2 inputs \(qkv \[S, B, 3E, 1, 1\] and the mask\), got 1/);
  assert.throws(
    build({ type_id: 2 }),
    /type_id=2 \(int8\) on plugin_version "1" takes its scales from TensorRT/,
  );
  assert.throws(build({ plugin_version: "7" }), /plugin_version must be one of "1" … "6"/);
});
