/**
 * mhafuse.QKVToContext batch_first = 1: qkv [B, S, 3E, 1, 1] → [B, S, E, 1, 1], the layout the attention fusion
 * now emits (no Transpose on either side). Every backend gives what the TensorRT form [S, B, …] gives on the
 * transposed input, transposed back — lengths, a -1 length with the fallback bias, padded rows zeroed — and the
 * onnxruntime lowering runs to the same numbers.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { Backend } from "../src/backends/backend.js";
import { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { OpError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { randomFloat32, seededRandom } from "../src/models/random.js";
import { transposeTensor } from "../src/ops/transpose.js";
import { toOnnxruntime } from "../src/passes/to-onnxruntime.js";
import { BACKENDS } from "./support/backends.js";
import { maxAbsDiff } from "./support/compare.js";
import { type AttrValue, runOp, runOpOnBackend } from "./support/ops.js";
import { runOnOnnxruntime } from "./support/ort.js";
import { webgpuUnavailable } from "./webgpu-helpers.js";

const [S, B, N, H] = [7, 3, 2, 4];
const E = N * H;
const rng = seededRandom(20261129);
const qkvSB = new Tensor("float32", randomFloat32(S * B * 3 * E, 1, rng), [S, B, 3 * E, 1, 1]);
/** [S, B, …] ↔ [B, S, …]: the first two axes swapped. */
const swap = (t: Tensor) => transposeTensor(t, [1, 0, 2, 3, 4]);
const qkvBS = swap(qkvSB);
const lengths = new Tensor("int32", [5, -1, 7], [B]);
const fallback = new Tensor("float32", randomFloat32(B * S * S, 1, rng), [B, 1, S, S]);

const CASES: [string, (Tensor | undefined)[], Record<string, AttrValue>][] = [
  ["no mask", [], {}],
  ["lengths with a -1 (fallback bias)", [lengths, fallback], {}],
  ["lengths, padded rows zeroed", [new Tensor("int32", [5, 0, 7], [B])], { compute_padded_rows: 0 }],
];

const backends: { name: string; backend: Backend; optional?: boolean }[] = BACKENDS.map((b) => ({
  name: b.name,
  backend: b.create(),
  optional: b.optional,
}));
after(async () => {
  for (const { backend } of backends) await backend.dispose();
});

for (const [what, rest, attrs] of CASES) {
  test(`QKVToContext batch_first = 1, ${what}: every backend equals the [S, B] form transposed`, async () => {
    const base = { num_heads: N, ...attrs };
    const want = swap(runOp("QKVToContext", [qkvSB, ...rest], base, 17, "mhafuse")[0]!);
    const spec = { opType: "QKVToContext", domain: "mhafuse", attrs: { ...base, batch_first: 1 } };
    const ref = runOp("QKVToContext", [qkvBS, ...rest], spec.attrs, 17, "mhafuse")[0]!;
    assert.deepEqual([...ref.dims], [B, S, E, 1, 1]);
    assert.ok(maxAbsDiff(ref, want) <= 1e-6, `reference: ${maxAbsDiff(ref, want)}`);
    for (const { name, backend, optional } of backends) {
      try {
        const [got] = await runOpOnBackend(backend, spec, [qkvBS, ...rest]);
        assert.ok(maxAbsDiff(got!, want) <= 1e-5, `${name}: max |diff| ${maxAbsDiff(got!, want)}`);
      } catch (e) {
        if (optional && webgpuUnavailable(e) !== undefined) continue;
        throw e;
      }
    }
  });
}

test("QKVToContext batch_first = 1 with int32 lengths runs on the webgpu kernel (where there is an adapter)", async (t) => {
  const webgpu = backends.find((b) => b.name === "webgpu")!;
  const len = new Tensor("int32", [5, 0, 7], [B]);
  const spec = { opType: "QKVToContext", domain: "mhafuse", attrs: { num_heads: N, batch_first: 1 } };
  const want = swap(runOp("QKVToContext", [qkvSB, len], { num_heads: N }, 17, "mhafuse")[0]!);
  let onDevice = false;
  try {
    const [got] = await runOpOnBackend(webgpu.backend, spec, [qkvBS, len], (prepared, node) => {
      onDevice = prepared instanceof WebGpuPreparedGraph && prepared.onDevice.has(node.name);
    });
    assert.ok(maxAbsDiff(got!, want) <= 1e-5, `max |diff| ${maxAbsDiff(got!, want)}`);
  } catch (e) {
    const reason = webgpuUnavailable(e);
    if (reason !== undefined) return t.skip(reason);
    throw e;
  }
  assert.ok(onDevice, "the packed op did not run on the webgpu kernel");
});

test("QKVToContext batch_first = 1 lowers for onnxruntime to the same numbers (lengths, fallback bias)", async () => {
  const b = new GraphBuilder({ opset: 17 });
  b.input("qkv", "float32", [B, S, 3 * E, 1, 1]);
  b.input("lengths", "int32", [B]);
  b.input("fallback", "float32", [B, 1, S, S]);
  b.output(
    b.op(
      "QKVToContext",
      ["qkv", "lengths", "fallback"],
      { num_heads: N, batch_first: 1 },
      { domain: "mhafuse", outputs: ["y"] },
    ),
    "float32",
  );
  const graph = b.build();
  const { graph: lowered, notes } = toOnnxruntime(graph);
  assert.ok(notes.some((n) => /QKVToContext/.test(n)));
  const got = (await runOnOnnxruntime(lowered, { qkv: qkvBS, lengths, fallback })).y!;
  const want = runOp(
    "QKVToContext",
    [qkvBS, lengths, fallback],
    { num_heads: N, batch_first: 1 },
    17,
    "mhafuse",
  )[0]!;
  assert.deepEqual([...got.dims], [B, S, E, 1, 1]);
  assert.ok(maxAbsDiff(got, want) <= 1e-5, `max |diff| ${maxAbsDiff(got, want)}`);
});

test("QKVToContext batch_first = 1 with var_seqlen is an OpError that says why", () => {
  const qkv = new Tensor("float32", randomFloat32(6 * 3 * E, 1, rng), [6, 3 * E, 1, 1]);
  const cu = new Tensor("int32", [0, 2, 6], [3]);
  assert.throws(
    () =>
      runOp(
        "QKVToContext",
        [qkv, undefined, cu, new Tensor("float32", [0, 0, 0, 0], [4])],
        { num_heads: N, var_seqlen: 1, batch_first: 1 },
        17,
        "mhafuse",
      ),
    (e: unknown) => e instanceof OpError && /batch_first = 1 is for the fixed-length form/.test(e.message),
  );
});
