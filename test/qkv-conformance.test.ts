import assert from "node:assert/strict";
import { test } from "node:test";
import { qkvToContext } from "../src/engine/qkv.js";
import { Tensor } from "../src/ir/tensor.js";
import { packQkvWeights } from "../src/packing/index.js";
import { decodeArray, loadQkvCases, maxAbs, referenceFixed } from "./qkv-helpers.js";

const cases = loadQkvCases();

for (const [name, c] of Object.entries(cases).filter(([, c]) => c.kind === "fixed")) {
  test(`qkv_public ${name} (${c.note}): compared rows within 1e-5`, () => {
    const qkv = decodeArray(c.inputs.qkv!);
    const mask = c.inputs.mask ? decodeArray(c.inputs.mask) : undefined;
    const got = qkvToContext(qkv, {
      numHeads: Number(c.attrs.num_heads),
      hiddenSize: Number(c.attrs.hidden_size),
      mask,
    });
    const want = decodeArray(c.outputs.context!);
    assert.deepEqual(got.dims, want.dims);
    const rows = decodeArray(c.rows_compared!).data as Uint8Array;
    const E = Number(c.attrs.hidden_size);
    let compared = 0;
    let worst = 0;
    rows.forEach((keep, r) => {
      if (!keep) return;
      compared++;
      const a = (got.data as Float32Array).subarray(r * E, (r + 1) * E);
      const b = (want.data as Float32Array).subarray(r * E, (r + 1) * E);
      worst = Math.max(worst, maxAbs(a, b));
    });
    assert.ok(compared > 0);
    assert.ok(worst <= 1e-5, `max |diff| ${worst}`);
    // The rows the vectors leave out (padded queries) as TensorRT computes them: a softmax over the valid keys.
    const [S, B] = qkv.dims as [number, number];
    const N = Number(c.attrs.num_heads);
    const lengths = mask ? Array.from(mask.data as Int32Array) : undefined;
    const trt = referenceFixed(qkv.toFloat64(), S, B, N, E / N, lengths);
    let padded = 0;
    rows.forEach((keep, r) => {
      if (keep) return;
      padded++;
      const a = (got.data as Float32Array).subarray(r * E, (r + 1) * E);
      assert.ok(maxAbs(a, trt.subarray(r * E, (r + 1) * E)) <= 1e-5, `padded row ${r}`);
    });
    if (lengths?.some((l) => l < S)) assert.ok(padded > 0);
  });
}

for (const [name, c] of Object.entries(cases).filter(([, c]) => c.kind === "varseqlen")) {
  test(`qkv_public ${name}: every row within 1e-5`, () => {
    const qkv = decodeArray(c.inputs.qkv!);
    const cuSeqlens = decodeArray(c.inputs.cu_seqlens!);
    const got = qkvToContext(qkv, {
      numHeads: Number(c.attrs.num_heads),
      cuSeqlens,
      maxSeqlen: Number(c.attrs.max_seqlen),
    });
    const want = decodeArray(c.outputs.context!);
    assert.deepEqual(got.dims, want.dims);
    const worst = maxAbs(got.data as Float32Array, want.data as Float32Array);
    assert.ok(worst <= 1e-5, `max |diff| ${worst}`);
  });
}

for (const [name, c] of Object.entries(cases).filter(([, c]) => c.kind === "packing")) {
  test(`qkv_public ${name}: packing reproduces packed weight, bias, qkv and context`, () => {
    const t = (k: string) => decodeArray(c.inputs[k]!);
    const E = Number(c.attrs.hidden_size);
    const N = Number(c.attrs.num_heads);
    const packed = packQkvWeights(
      { wq: t("wq"), wk: t("wk"), wv: t("wv"), bq: t("bq"), bk: t("bk"), bv: t("bv") },
      { numHeads: N },
    );
    const wantW = decodeArray(c.outputs.packed_weight!);
    const wantB = decodeArray(c.outputs.packed_bias!);
    assert.deepEqual(packed.weight.dims, wantW.dims);
    assert.deepEqual(packed.bias!.dims, wantB.dims);
    // Packing only moves values: they must be bit-identical.
    assert.deepEqual(Array.from(packed.weight.data as Float32Array), Array.from(wantW.data as Float32Array));
    assert.deepEqual(Array.from(packed.bias!.data as Float32Array), Array.from(wantB.data as Float32Array));
    // x [S, B, E] @ weight + bias (float64) is the op's input.
    const x = t("x");
    const [S, B] = x.dims as [number, number];
    const xd = x.data as Float32Array;
    const w = packed.weight.data as Float32Array;
    const bias = packed.bias!.data as Float32Array;
    const qkv = new Float32Array(S * B * 3 * E);
    for (let r = 0; r < S * B; r++)
      for (let o = 0; o < 3 * E; o++) {
        let acc = bias[o]!;
        for (let i = 0; i < E; i++) acc += xd[r * E + i]! * w[i * 3 * E + o]!;
        qkv[r * 3 * E + o] = acc;
      }
    const wantQkv = decodeArray(c.outputs.qkv!);
    assert.ok(maxAbs(qkv, wantQkv.data as Float32Array) <= 1e-5);
    const ctx = qkvToContext(new Tensor("float32", qkv, [S, B, 3 * E, 1, 1]), { numHeads: N });
    assert.ok(maxAbs(ctx.data as Float32Array, decodeArray(c.outputs.context!).data as Float32Array) <= 1e-5);
  });
}
