/**
 * The op suite as data (test/data/ops/*.json, written by scripts/gen-op-cases.py with numpy in float64):
 * every case runs on the reference, on the CPU kernels called directly, and on every registered backend
 * through prepare + run (test/support/backends.ts). Cases too large to store compare against the reference.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, test } from "node:test";
import { cpuKernels } from "../src/backends/cpu/kernels.js";
import { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import type { DType } from "../src/ir/dtype.js";
import { Tensor } from "../src/ir/tensor.js";
import { randomFloat32, seededRandom } from "../src/models/random.js";
import { BACKENDS } from "./support/backends.js";
import { nodeOf, type OpSpec, runOp, runOpOnBackend, runOpOnCpu } from "./support/ops.js";
import { webgpuUnavailable } from "./webgpu-helpers.js";

interface JsonTensor {
  dtype: DType;
  dims: number[];
  data?: number[];
  random?: number;
  scale?: number;
}

interface OpCase {
  name: string;
  op: { type: string; domain?: string; opset?: number; attrs?: OpSpec["attrs"]; outputs?: number };
  inputs: (JsonTensor | null)[];
  expected: JsonTensor[] | "reference";
  tolerance: number;
}

const DATA = new URL("./data/ops/", import.meta.url);

function tensorOf(j: JsonTensor): Tensor {
  if (j.random !== undefined) {
    const n = j.dims.reduce((a, b) => a * b, 1);
    return new Tensor("float32", randomFloat32(n, j.scale ?? 1, seededRandom(j.random)), j.dims);
  }
  if (j.dtype === "int64") return new Tensor("int64", BigInt64Array.from(j.data!.map(BigInt)), j.dims);
  return new Tensor(j.dtype, j.data!, j.dims);
}

function assertMatches(got: Tensor[], want: Tensor[], tolerance: number, what: string): void {
  // Ops may return optional outputs the node does not declare (LayerNormalization's statistics).
  assert.ok(got.length >= want.length, `${what}: ${got.length} outputs, expected ${want.length}`);
  want.forEach((w, o) => {
    const g = got[o]!;
    assert.equal(g.type, w.type, `${what}: output ${o} dtype`);
    assert.deepEqual([...g.dims], [...w.dims], `${what}: output ${o} shape`);
    for (let i = 0; i < w.size; i++) {
      const a = g.getNumber(i);
      const e = w.getNumber(i);
      assert.ok(
        Math.abs(a - e) <= tolerance * (1 + Math.abs(e)),
        `${what}: output ${o}[${i}] is ${a}, expected ${e}`,
      );
    }
  });
}

const files = readdirSync(DATA).filter((f) => f.endsWith(".json"));
const cases = files.flatMap(
  (f) => (JSON.parse(readFileSync(new URL(f, DATA), "utf8")) as { cases: OpCase[] }).cases,
);
const specOf = (c: OpCase): OpSpec => ({
  opType: c.op.type,
  domain: c.op.domain,
  opset: c.op.opset,
  attrs: c.op.attrs,
  outputs: c.op.outputs,
});
/**
 * Ops whose every case must run on the webgpu kernel (not silently on the CPU reference): the suite's values
 * then check the GPU kernel itself.
 */
const GPU_KERNEL_OPS = new Set([
  "mhafuse::Attention",
  "com.microsoft::MultiHeadAttention",
  "com.microsoft::RotaryEmbedding",
  "::Slice",
  "::Concat",
  "::Pow",
  "::ReduceMean",
  "::SimplifiedLayerNormalization",
  "com.microsoft::SimplifiedLayerNormalization",
  "::Cos",
  "::Sin",
]);

const backends = BACKENDS.map((b) => ({ name: b.name, backend: b.create(), optional: b.optional }));
after(() => Promise.all(backends.map((b) => b.backend.dispose())));

for (const c of cases) {
  test(`op suite: ${c.name}`, async () => {
    const inputs = c.inputs.map((j) => (j ? tensorOf(j) : undefined));
    const spec = specOf(c);
    const reference = runOp(
      spec.opType,
      inputs,
      spec.attrs,
      spec.opset ?? 17,
      spec.domain ?? "",
      spec.outputs,
    );
    // Against the reference: the outputs the node declares (an op may compute more).
    const expected =
      c.expected === "reference" ? reference.slice(0, c.op.outputs ?? 1) : c.expected.map(tensorOf);
    if (c.expected !== "reference") assertMatches(reference, expected, c.tolerance, "reference");
    const onCpu = runOpOnCpu(spec, inputs);
    assertMatches(onCpu, expected, c.tolerance, "cpu kernel");
    // Declared aliases hand the input's buffer on: no copy.
    const kernel = cpuKernels.find(
      nodeOf(spec, inputs),
      spec.opset ?? 17,
      inputs.map((t) => t?.type),
    );
    for (const [i, o] of kernel?.aliases ?? []) {
      assert.equal(onCpu[o]!.data.buffer, inputs[i]!.data.buffer, `output ${o} should alias input ${i}`);
    }
    for (const { name, backend, optional } of backends) {
      let got: Tensor[];
      try {
        got = await runOpOnBackend(backend, spec, inputs, (prepared, node) => {
          if (prepared instanceof WebGpuPreparedGraph && GPU_KERNEL_OPS.has(`${node.domain}::${node.opType}`))
            assert.ok(prepared.onDevice.has(node.name), `${c.name}: did not run on the webgpu kernel`);
        });
      } catch (e) {
        // An optional backend this machine lacks (webgpu without an adapter) is skipped, not failed.
        if (optional && webgpuUnavailable(e) !== undefined) continue;
        throw e;
      }
      assertMatches(got, expected, c.tolerance, name);
    }
  });
}

test("op suite: every op with a CPU kernel has a case (or is listed with the suite that covers it)", () => {
  const covered = new Set(cases.map((c) => `${c.op.domain ?? ""}::${c.op.type}`));
  // Covered against onnxruntime and the TensorRT conformance vectors in their own suites.
  const elsewhere = new Set([
    "::Attention", // attention-ops.test.ts (ONNX Attention-23)
    "com.microsoft::Attention", // attention-ops.test.ts
    "mhafuse::QKVToContext", // qkv-*.test.ts
    "*::CustomQKVToContextPluginDynamic", // qkv-trt-plugin.test.ts (any domain, as TensorRT's parser)
  ]);
  const missing = cpuKernels.ops().filter((k) => !covered.has(k) && !elsewhere.has(k));
  assert.deepEqual(missing, []);
  assert.ok(cases.length >= 30, `only ${cases.length} cases loaded`);
});
