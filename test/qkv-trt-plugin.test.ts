// TensorRT's CustomQKVToContextPluginDynamic, checked against TensorRT's own definitions: masks made by a port of
// embLayerNorm's fillSBSMaskKernel (trt-mask-kernel.ts), every output row (padded rows included) against a
// float64 reference of TensorRT's softmax, each version's input list and attribute checks, and the int8
// interleaved form against float64 math with the scales applied.
import assert from "node:assert/strict";
import { test } from "node:test";
import { encodePackedMask, packedMaskLayout } from "../src/attention/plugin-mask.js";
import { OpError } from "../src/errors.js";
import { Tensor } from "../src/ir/tensor.js";
import {
  maxAbs,
  randomTensor,
  referenceFixed,
  referenceMasked,
  referenceVarlen,
  runSingle,
} from "./qkv-helpers.js";
import { declaredPackSize, fillSBSMask, maskSBFromLengths } from "./trt-mask-kernel.js";

const PLUGIN = "CustomQKVToContextPluginDynamic";
const N = 2;
const H = 4;
const E = N * H;

const half = (t: Tensor) => new Tensor("float16", Array.from(t.data as Float32Array), [...t.dims]);
const fp16Attrs = (version: string) => ({
  type_id: 1,
  hidden_size: E,
  num_heads: N,
  has_mask: 1,
  plugin_version: version,
});

for (const S of [64, 96, 128, 384])
  for (const version of ["1", "4"])
    test(`v${version} fp16, TensorRT's packed mask at S = ${S}: every row (padded included) within 2e-3`, () => {
      const lengths = [0, 1, Math.floor(S / 3) + 1, S];
      const B = lengths.length;
      const qkv = half(randomTensor("float32", [S, B, 3 * E, 1, 1], S + Number(version)));
      const mask = new Tensor("int32", fillSBSMask(maskSBFromLengths(lengths, S), S, B), [
        B,
        declaredPackSize(S),
      ]);
      const out = runSingle(PLUGIN, "trt.plugins", fp16Attrs(version), [qkv, mask]);
      assert.equal(out.type, "float16");
      assert.deepEqual(out.dims, [S, B, E, 1, 1]);
      const want = referenceFixed(qkv.toFloat64(), S, B, N, H, lengths);
      assert.ok(maxAbs(out.toNumbers(), want) <= 2e-3, `max |diff| ${maxAbs(out.toNumbers(), want)}`);
      // Length 0: zero rows everywhere; padded rows of the partial sequence are not zero.
      const rows = out.toNumbers();
      for (let s = 0; s < S; s++) assert.ok(rows.slice(s * B * E, (s * B + 1) * E).every((v) => v === 0));
      const s = S - 1;
      assert.ok(rows.slice((s * B + 2) * E, (s * B + 3) * E).some((v) => v !== 0));
    });

test("the decoder reads sequence b at b · xmmas_m · threads_per_cta words, as TensorRT's kernels do", () => {
  assert.deepEqual(
    [64, 96, 128, 384].map((S) => [packedMaskLayout(S)!.strideWords, packedMaskLayout(S)!.declaredWords]),
    [
      [256, 512],
      [384, 512],
      [512, 512],
      [6144, 6144],
    ],
  );
  // mhafuse's encoder writes exactly what fillSBSMaskKernel writes (its unwritten tail aside).
  for (const S of [64, 96, 128, 384]) {
    const lengths = [S, 5, 0];
    const trt = fillSBSMask(maskSBFromLengths(lengths, S), S, 3, 0);
    assert.deepEqual(Array.from(encodePackedMask(lengths, S)), Array.from(trt));
  }
});

test("a non-contiguous packed mask masks those keys for every query row, as the fused kernel does", () => {
  const S = 128;
  const B = 3;
  const qkv = half(randomTensor("float32", [S, B, 3 * E, 1, 1], 401));
  const valid = (b: number, j: number) => (b === 0 ? j % 3 !== 1 : b === 1 ? j < 40 : j >= 100);
  const maskSB = new Int32Array(S * B);
  for (let s = 0; s < S; s++) for (let b = 0; b < B; b++) maskSB[s * B + b] = valid(b, s) ? 1 : 0;
  const mask = new Tensor("int32", fillSBSMask(maskSB, S, B), [B, declaredPackSize(S)]);
  const out = runSingle(PLUGIN, "", fp16Attrs("1"), [qkv, mask]);
  const want = referenceMasked(qkv.toFloat64(), S, B, N, H, { key: valid, row: () => true });
  assert.ok(maxAbs(out.toNumbers(), want) <= 2e-3);
  // compute_padded_rows=0: rows of masked-out tokens are zeros, the others unchanged.
  const zeroed = runSingle(PLUGIN, "", { ...fp16Attrs("1"), compute_padded_rows: 0 }, [qkv, mask]);
  const wantZeroed = referenceMasked(qkv.toFloat64(), S, B, N, H, { key: valid, row: valid });
  assert.ok(maxAbs(zeroed.toNumbers(), wantZeroed) <= 2e-3);
});

test("packed masks TensorRT has no layout for are refused, naming the shape it declares", () => {
  const qkvAt = (S: number) => half(randomTensor("float32", [S, 2, 3 * E, 1, 1], S));
  const run = (S: number, mask: Tensor) => () => runSingle(PLUGIN, "", fp16Attrs("1"), [qkvAt(S), mask]);
  // [B, 256] at S = 64 (the words fillSBSMaskKernel fills) is not the [B, 512] TensorRT declares.
  const words64 = fillSBSMask(maskSBFromLengths([10, 64], 64), 64, 2).subarray(0, 512);
  assert.throws(run(64, new Tensor("int32", words64, [2, 256])), /expected int32 \[2, 1\].*or \[2, 512\]/);
  // S = 256: TensorRT writes [B, 1] lengths there, never a packed mask.
  assert.throws(
    run(256, new Tensor("int32", new Int32Array(1024), [2, 512])),
    /only for S = 64, 96, 128 and 384/,
  );
  // A word fillSBSMaskKernel cannot write (bit 0 and its copy, bit 2, disagree).
  const bad = fillSBSMask(maskSBFromLengths([10, 64], 128), 128, 2);
  bad[7] = (bad[7]! ^ 0b100) | 0;
  assert.throws(run(128, new Tensor("int32", bad, [2, 512])), /fillSBSMaskKernel never writes/);
});

test("v1 with maskIdx lengths [B, 1] (the unfused path) and fp32: every row within 1e-5", () => {
  const S = 7;
  const lengths = [7, 3, 0];
  const qkv = randomTensor("float32", [S, 3, 3 * E, 1, 1], 402);
  const out = runSingle(
    PLUGIN,
    "",
    { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, plugin_version: "1" },
    [qkv, new Tensor("int32", lengths, [3, 1])],
  );
  assert.ok(maxAbs(out.data as Float32Array, referenceFixed(qkv.toFloat64(), S, 3, N, H, lengths)) <= 1e-5);
});

for (const version of ["2", "5"]) {
  test(`v${version} fp32 with int32 [B] lengths (var_seqlen 0): every row within 1e-5`, () => {
    const S = 9;
    const lengths = [9, 4, 0, 1];
    const B = lengths.length;
    const qkv = randomTensor("float32", [S, B, 3 * E, 1, 1], 403);
    const out = runSingle(
      PLUGIN,
      "",
      { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, plugin_version: version },
      [qkv, new Tensor("int32", lengths, [B])],
    );
    assert.ok(maxAbs(out.data as Float32Array, referenceFixed(qkv.toFloat64(), S, B, N, H, lengths)) <= 1e-5);
  });

  test(`v${version} var_seqlen=1 fp16: [T, 3E, 1, 1] + cu_seqlens within 2e-3`, () => {
    const cu = [0, 3, 3, 8, 9];
    const qkv = half(randomTensor("float32", [9, 3 * E, 1, 1], 404));
    const out = runSingle(
      PLUGIN,
      "trt.plugins",
      { type_id: 1, hidden_size: E, num_heads: N, has_mask: 1, var_seqlen: 1, plugin_version: version },
      [
        qkv,
        new Tensor("int32", [0, 0, 0, 0], [4]),
        new Tensor("int32", cu, [5]),
        new Tensor("float32", new Float32Array(5), [5]),
      ],
    );
    assert.deepEqual(out.dims, [9, E, 1, 1]);
    assert.ok(maxAbs(out.toNumbers(), referenceVarlen(qkv.toFloat64(), cu, N, H)) <= 2e-3);
  });
}

test("trt_padded_head_size=64 scales var-seqlen attention by 1/8 for H = 16, as TensorRT's padded kernels do", () => {
  const cu = [0, 4, 10];
  const qkv = randomTensor("float32", [10, 3 * 2 * 16, 1, 1], 405, 3);
  const attrs = {
    type_id: 0,
    hidden_size: 32,
    num_heads: 2,
    has_mask: 1,
    var_seqlen: 1,
    plugin_version: "2",
  };
  const inputs = [
    qkv,
    new Tensor("int32", [0, 0], [2]),
    new Tensor("int32", cu, [3]),
    new Tensor("float32", new Float32Array(6), [6]),
  ];
  const quirk = runSingle(PLUGIN, "", { ...attrs, trt_padded_head_size: 64 }, inputs);
  assert.ok(maxAbs(quirk.data as Float32Array, referenceVarlen(qkv.toFloat64(), cu, 2, 16, 1 / 8)) <= 1e-5);
  const exact = runSingle(PLUGIN, "", attrs, inputs);
  assert.ok(maxAbs(exact.data as Float32Array, referenceVarlen(qkv.toFloat64(), cu, 2, 16)) <= 1e-5);
  assert.ok(maxAbs(exact.data as Float32Array, quirk.data as Float32Array) > 1e-3);
});

test('any node domain; plugin_version defaults to "1" (TensorRT\'s ONNX parser)', () => {
  const S = 64;
  const lengths = [30, 64];
  const qkv = half(randomTensor("float32", [S, 2, 3 * E, 1, 1], 406));
  const mask = new Tensor("int32", fillSBSMask(maskSBFromLengths(lengths, S), S, 2), [2, 512]);
  const want = referenceFixed(qkv.toFloat64(), S, 2, N, H, lengths);
  for (const domain of ["", "trt.plugins", "com.example.plugins"]) {
    const out = runSingle(PLUGIN, domain, { type_id: 1, hidden_size: E, num_heads: N, has_mask: 1 }, [
      qkv,
      mask,
    ]);
    assert.ok(maxAbs(out.toNumbers(), want) <= 2e-3, domain);
  }
});

test("attribute and input checks as TensorRT's plugin creators make them", () => {
  const qkv = randomTensor("float32", [4, 2, 3 * E, 1, 1], 407);
  const lengths = new Tensor("int32", [4, 2], [2]);
  const run =
    (attrs: Record<string, number | string>, inputs: (Tensor | undefined)[] = [qkv, lengths]) =>
    () =>
      runSingle(PLUGIN, "", attrs, inputs);
  const base = { type_id: 0, hidden_size: E, num_heads: N, has_mask: 1, plugin_version: "1" };
  const fails = (attrs: Record<string, number | string>, re: RegExp, inputs?: (Tensor | undefined)[]) =>
    assert.throws(run(attrs, inputs), (e: unknown) => e instanceof OpError && re.test(e.message));
  fails({ hidden_size: E, num_heads: N, has_mask: 1 }, /plugin_version "1" requires attribute type_id/);
  fails({ type_id: 0, num_heads: N, plugin_version: "4" }, /requires attributes hidden_size, has_mask/);
  fails({ ...base, plugin_version: "7" }, /plugin_version must be one of "1" … "6"/);
  fails({ ...base, type_id: 1 }, /type_id=1 declares float16 input, but qkv is float32/);
  fails({ ...base, type_id: 3 }, /type_id must be 0 \(float32\), 1 \(float16\) or 2/);
  fails({ ...base, type_id: 2 }, /use plugin_version "3" or "6" with use_explicit_int8=1/);
  fails({ ...base, has_mask: 2 }, /has_mask must be 0 or 1/);
  fails({ ...base, has_mask: 0 }, /takes 1 input .*got 2/);
  fails({ ...base, num_heads: 0 }, /num_heads must be > 0/);
  fails({ ...base, dq_probs: -1 }, /dq_probs must be > 0/);
  fails({ ...base, hidden_size: 12 }, /hidden_size=12/);
  fails({ ...base, plugin_version: "2", var_seqlen: 1 }, /takes 4 inputs/);
  fails({ ...base, plugin_version: "2", var_seqlen: 1, has_mask: 0 }, /var_seqlen=1 needs has_mask=1/, [qkv]);
  const packed = new Tensor("int32", new Int32Array(2 * 512), [2, 512]);
  fails({ ...base, plugin_version: "5" }, /var_seqlen=0 takes int32 \[B\] lengths/, [qkv, packed]);
  // var_seqlen is an attribute of versions 2 and 5 only: version 1 ignores it, as TensorRT does.
  const flat = randomTensor("float32", [5, 3 * E, 1, 1], 408);
  fails({ ...base, var_seqlen: 1 }, /var-seqlen form \[T, 3E, 1, 1\] is plugin_version "2" or "5"/, [
    flat,
    lengths,
  ]);
});

/** Float64 reference of the int8 interleaved plugin: dequantise, attend with scale 1/8, divide by ctx scale. */
function int8Reference(
  q: Int8Array,
  E: number,
  T: number,
  cu: number[],
  heads: number,
  qs: number,
  cs: number,
) {
  const tokenMajor = new Float64Array(T * 3 * E);
  for (let c = 0; c < 3 * E; c++) for (let t = 0; t < T; t++) tokenMajor[t * 3 * E + c] = q[c * T + t]! * qs;
  const ctx = referenceVarlen(tokenMajor, cu, heads, E / heads, 0.125);
  const out = new Float64Array(E * T);
  for (let c = 0; c < E; c++) for (let t = 0; t < T; t++) out[c * T + t] = ctx[t * E + c]! / cs;
  return out;
}

for (const version of ["3", "6"])
  test(`v${version} int8 interleaved: [1, 3E, T, 1] with explicit scales within one int8 step of float64`, () => {
    const heads = 2;
    const hidden = 128; // head size 64, the int8 kernels' size
    const cu = [0, 5, 5, 17, 30];
    const T = 30;
    let x = 12345;
    const q = Int8Array.from({ length: 3 * hidden * T }, () => {
      x = (x * 1103515245 + 12345) >>> 0;
      return ((x >>> 8) % 255) - 127;
    });
    const attrs = {
      hidden_size: hidden,
      num_heads: heads,
      plugin_version: version,
      use_explicit_int8: 1,
      input_qkv_scale: 0.02,
      output_ctx_scale: 0.015,
      dq_probs: 1 / 127,
    };
    const inputs = [
      new Tensor("int8", q, [1, 3 * hidden, T, 1]),
      new Tensor("int32", cu, [5]),
      new Tensor("float32", new Float32Array(13), [13]),
    ];
    const out = runSingle(PLUGIN, "", attrs, inputs);
    assert.equal(out.type, "int8");
    assert.deepEqual(out.dims, [1, hidden, T, 1]);
    const want = int8Reference(q, hidden, T, cu, heads, 0.02, 0.015);
    const got = out.data as Int8Array;
    let worst = 0;
    let saturated = 0;
    for (let i = 0; i < got.length; i++) {
      const w = Math.max(-128, Math.min(127, want[i]!));
      if (w !== want[i]) saturated++;
      worst = Math.max(worst, Math.abs(got[i]! - w));
    }
    assert.ok(worst <= 0.5 + 1e-6, `max |diff| ${worst} int8 steps`); // rounding only
    assert.ok(saturated < got.length / 10, "scales chosen so that most values are in range");
    assert.ok(new Set(got).size > 50, "a spread of int8 values, not a constant");
    // use_explicit_int8=0 would take the scales from TensorRT's calibration: a clear error, not a guess.
    assert.throws(
      () => runSingle(PLUGIN, "", { ...attrs, use_explicit_int8: 0 }, inputs),
      /use_explicit_int8=0: TensorRT then takes the int8 scales/,
    );
    assert.throws(
      () =>
        runSingle(PLUGIN, "", attrs, [new Tensor("int8", q, [3 * hidden, T, 1, 1]), inputs[1], inputs[2]]),
      /qkv must be int8 \[1, 3E, T, 1\]/,
    );
  });
