/**
 * The packed-QKV conformance vectors (../shared/fixtures/qkv/qkv_public.json, as test/qkv-conformance.test.ts
 * runs them on the CPU) on the webgpu backend: the fixed-length cases with and without a lengths mask and the
 * var-seqlen cases with cu_seqlens, each run by the GPU kernel (not a CPU fallback), within 1e-4 of the
 * vectors' context (rows the vectors compare) and of TensorRT's padded rows (the rest).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebGpuBackend } from "../src/backends/webgpu/backend.js";
import { WebGpuPreparedGraph } from "../src/backends/webgpu/graph/prepared-graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { decodeArray, loadQkvCases, maxAbs, referenceFixed } from "./qkv-helpers.js";
import { runOpOnBackend } from "./support/ops.js";
import { gpuContext } from "./webgpu-helpers.js";

const backend = new WebGpuBackend();
after(() => backend.dispose());
const cases = Object.entries(loadQkvCases()).filter(([, c]) => c.kind !== "packing");

test("the conformance file has fixed-length and var-seqlen cases", () => {
  assert.ok(cases.some(([, c]) => c.kind === "fixed"));
  assert.ok(cases.some(([, c]) => c.kind === "varseqlen"));
});

for (const [name, c] of cases) {
  test(`webgpu: qkv_public ${name} (${c.kind}) on the GPU kernel within 1e-4`, async (t) => {
    const ctx = await gpuContext();
    if (typeof ctx === "string") return t.skip(ctx);
    const qkv = decodeArray(c.inputs.qkv!);
    const N = Number(c.attrs.num_heads);
    const attrs: Record<string, number> = { num_heads: N };
    let inputs: (Tensor | undefined)[];
    if (c.kind === "fixed") {
      attrs.hidden_size = Number(c.attrs.hidden_size);
      inputs = [qkv, c.inputs.mask ? decodeArray(c.inputs.mask) : undefined];
    } else {
      // The plugin's var-seqlen form: [T, 3E, 1, 1], an unused mask, cu_seqlens and a max-seqlen shape input.
      attrs.var_seqlen = 1;
      const maxSeqlen = Number(c.attrs.max_seqlen);
      inputs = [
        qkv,
        new Tensor("int32", [0], [1]),
        decodeArray(c.inputs.cu_seqlens!),
        new Tensor("float32", new Float32Array(maxSeqlen), [maxSeqlen]),
      ];
    }
    let ranOnDevice = false;
    const [got] = await runOpOnBackend(
      backend,
      { opType: "QKVToContext", domain: "mhafuse", attrs },
      inputs,
      (prepared, node) => {
        ranOnDevice = prepared instanceof WebGpuPreparedGraph && prepared.onDevice.has(node.name);
      },
    );
    assert.ok(ranOnDevice, "the QKVToContext node must run on the GPU");
    const want = decodeArray(c.outputs.context!);
    assert.deepEqual(got!.dims, want.dims);
    const g = got!.data as Float32Array;
    const w = want.data as Float32Array;
    const E = w.length / (c.kind === "fixed" ? qkv.dims[0]! * qkv.dims[1]! : qkv.dims[0]!);
    const rows = c.rows_compared ? (decodeArray(c.rows_compared).data as Uint8Array) : undefined;
    // Rows the vectors leave out (padded queries) as TensorRT computes them: a softmax over the valid keys.
    const trt =
      rows && c.kind === "fixed"
        ? referenceFixed(
            qkv.toFloat64(),
            qkv.dims[0]!,
            qkv.dims[1]!,
            N,
            E / N,
            inputs[1] ? Array.from(inputs[1].data as Int32Array) : undefined,
          )
        : undefined;
    let worst = 0;
    for (let r = 0; r < w.length / E; r++) {
      const row = g.subarray(r * E, (r + 1) * E);
      const ref = !rows || rows[r] ? w.subarray(r * E, (r + 1) * E) : trt!.subarray(r * E, (r + 1) * E);
      worst = Math.max(worst, maxAbs(row, ref));
    }
    assert.ok(worst <= 1e-4, `max |diff| ${worst}`);
  });
}
