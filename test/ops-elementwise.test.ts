import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import * as ort from "onnxruntime-node";
import { MhafuseError, OpError } from "../src/errors.js";
import { floatAttr, GraphBuilder } from "../src/ir/builder.js";
import type { DType } from "../src/ir/dtype.js";
import { floatToHalf, halfToFloat } from "../src/ir/float16.js";
import type { Attribute, Dim, Node } from "../src/ir/graph.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import "../src/ops/binary.js";
import "../src/ops/cast.js";
import "../src/ops/contrib-activations.js";
import "../src/ops/unary.js";
import "../src/ops/where-clip.js";
import { planBroadcast } from "../src/ops/elementwise-util.js";
import { getOp } from "../src/ops/registry.js";

// ---- helpers -----------------------------------------------------------------------------------------

type AttrValue = number | string | Attribute;

function toAttr(v: AttrValue): Attribute {
  if (typeof v === "string") return { type: "string", value: v };
  if (typeof v === "number")
    return Number.isInteger(v) ? { type: "int", value: v } : { type: "float", value: v };
  return v;
}

function nodeOf(opType: string, nInputs: number, attrs: Record<string, AttrValue>, domain: string): Node {
  return {
    name: `${opType}_test`,
    opType,
    domain,
    inputs: Array.from({ length: nInputs }, (_, i) => `in${i}`),
    outputs: ["out"],
    attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, toAttr(v)])),
  };
}

/** Runs one op's kernel directly. */
function run(
  opType: string,
  inputs: (Tensor | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opts: { opset?: number; domain?: string } = {},
): Tensor {
  const node = nodeOf(opType, inputs.length, attrs, opts.domain ?? "");
  const outs = getOp(node).run({ node, opset: opts.opset ?? 17 }, inputs);
  return outs[0]!;
}

const f32 = (data: number[], dims: number[] = [data.length]) => new Tensor("float32", data, dims);
const f64 = (data: number[], dims: number[] = [data.length]) => new Tensor("float64", data, dims);
const i32 = (data: number[], dims: number[] = [data.length]) => new Tensor("int32", data, dims);
const i64 = (data: (number | bigint)[], dims: number[] = [data.length]) =>
  new Tensor("int64", BigInt64Array.from(data.map((v) => BigInt(v))), dims);
const bool = (data: number[], dims: number[] = [data.length]) => new Tensor("bool", data, dims);
const f16 = (data: number[], dims: number[] = [data.length]) =>
  new Tensor("float16", Uint16Array.from(data.map(floatToHalf)), dims);
const scalar = (dtype: DType, v: number) => new Tensor(dtype, [v], []);

function assertClose(got: Tensor, expected: readonly number[], tol = 1e-6, dims?: readonly number[]): void {
  if (dims) assert.deepEqual([...got.dims], [...dims], "dims");
  const values = got.toNumbers();
  assert.equal(values.length, expected.length, "element count");
  expected.forEach((e, i) => {
    const g = values[i]!;
    if (Number.isNaN(e)) assert.ok(Number.isNaN(g), `[${i}]: expected NaN, got ${g}`);
    else if (g !== e) {
      assert.ok(Math.abs(g - e) <= tol * Math.max(1, Math.abs(e)), `[${i}]: got ${g}, expected ${e}`);
    }
  });
}

function assertExact(
  got: Tensor,
  dtype: DType,
  expected: readonly (number | bigint)[],
  dims?: number[],
): void {
  assert.equal(got.type, dtype);
  if (dims) assert.deepEqual([...got.dims], dims);
  assert.deepEqual(Array.from(got.data as ArrayLike<number | bigint>), [...expected]);
}

/** Independent numpy broadcast reference: unravel each output index and read each input through it. */
function refBroadcast(shapes: number[][]): { out: number[]; index: (k: number, flat: number) => number } {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const padded = shapes.map((s) => [...Array(rank - s.length).fill(1), ...s]);
  const out = Array.from({ length: rank }, (_, d) => Math.max(...padded.map((s) => s[d]!)));
  const index = (k: number, flat: number) => {
    const s = padded[k]!;
    let rest = flat;
    let idx = 0;
    let stride = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const coord = rest % out[d]!;
      rest = Math.floor(rest / out[d]!);
      if (s[d] !== 1) idx += coord * stride;
      stride *= s[d]!;
    }
    return idx;
  };
  return { out, index };
}

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const seq = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

/** erf by its Maclaurin series in float64, good to ~1e-15 for |x| <= 2.5 (the test's own reference). */
function erfRef(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 120; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

// ---- broadcasting ------------------------------------------------------------------------------------

test("Add broadcasts a scalar, [3,1]×[1,4] and a lower-rank operand", () => {
  assertClose(run("Add", [f32([1, -2, 3], [3]), scalar("float32", 10)]), [11, 8, 13], 0, [3]);
  assertClose(run("Add", [scalar("float32", 10), f32([1, -2, 3], [3])]), [11, 8, 13], 0, [3]);

  const col = f32([1, 2, 3], [3, 1]);
  const row = f32([10, 20, 30, 40], [1, 4]);
  assertClose(run("Add", [col, row]), [11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43], 0, [3, 4]);
  assertClose(run("Sub", [col, row]), [-9, -19, -29, -39, -8, -18, -28, -38, -7, -17, -27, -37], 0, [3, 4]);

  // [2,3,2] * [2] (bias-like last axis) and [2,3,2] * [3,1] (middle-axis column)
  const x = f32(
    seq(12, (i) => i - 5),
    [2, 3, 2],
  );
  const expectBias = seq(12, (i) => (i - 5) * (i % 2 === 0 ? 2 : -1));
  assertClose(run("Mul", [x, f32([2, -1])]), expectBias, 0, [2, 3, 2]);
  const expectCol = seq(12, (i) => (i - 5) * [1, 10, 100][Math.floor(i / 2) % 3]!);
  assertClose(run("Mul", [x, f32([1, 10, 100], [3, 1])]), expectCol, 0, [2, 3, 2]);
});

test("incompatible shapes raise OpError", () => {
  assert.throws(() => run("Add", [f32([1, 2, 3]), f32([1, 2])]), OpError);
  assert.throws(() => run("Where", [bool([1, 0]), f32([1, 2, 3]), f32([1])]), OpError);
});

test("property: broadcasting binary ops and Where match an index-by-index reference", () => {
  const shapes = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 }).chain((out) => {
    const operand = fc
      .tuple(
        fc.integer({ min: 0, max: out.length }),
        fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }),
      )
      .map(([drop, ones]) => out.map((d, i) => (ones[i] ? 1 : d)).slice(drop));
    return fc.tuple(operand, operand, operand);
  });
  fc.assert(
    fc.property(shapes, ([sa, sb, sc]) => {
      const a = f32(
        seq(size(sa), (i) => i * 0.5 - 3),
        sa,
      );
      const b = f32(
        seq(size(sb), (i) => 1 + i * 0.25),
        sb,
      );
      const cond = bool(
        seq(size(sc), (i) => ((i * 7) % 3 === 0 ? 1 : 0)),
        sc,
      );
      const ref = refBroadcast([sa, sb]);
      const n = size(ref.out);
      const data = (t: Tensor, k: number, i: number, r = ref) => t.getNumber(r.index(k, i));
      assertClose(
        run("Add", [a, b]),
        seq(n, (i) => data(a, 0, i) + data(b, 1, i)),
        0,
        ref.out,
      );
      assertClose(
        run("Sub", [b, a]),
        seq(n, (i) => data(b, 1, i) - data(a, 0, i)),
        0,
        ref.out,
      );
      assertClose(
        run("Div", [a, b]),
        seq(n, (i) => Math.fround(data(a, 0, i) / data(b, 1, i))),
        0,
        ref.out,
      );
      assertClose(
        run("Less", [a, b]),
        seq(n, (i) => (data(a, 0, i) < data(b, 1, i) ? 1 : 0)),
        0,
        ref.out,
      );
      const ref3 = refBroadcast([sc, sa, sb]);
      const w = run("Where", [cond, a, b]);
      const expected = seq(size(ref3.out), (i) =>
        cond.getNumber(ref3.index(0, i)) ? a.getNumber(ref3.index(1, i)) : b.getNumber(ref3.index(2, i)),
      );
      assertClose(w, expected, 0, ref3.out);
    }),
    { numRuns: 300 },
  );
});

test("planBroadcast merges dims that broadcast alike", () => {
  const same = planBroadcast(
    [2, 3, 4],
    [
      [2, 3, 4],
      [2, 3, 4],
    ],
  );
  assert.deepEqual([same.outer, same.inner, same.innerStep], [[], 24, [1, 1]]);
  const bias = planBroadcast([2, 3, 4], [[2, 3, 4], [4]]);
  assert.deepEqual([bias.outer, bias.inner, bias.outerStrides], [[6], 4, [[4], [0]]]);
  const rowScale = planBroadcast(
    [2, 3, 4],
    [
      [2, 3, 4],
      [2, 3, 1],
    ],
  );
  assert.deepEqual(
    [rowScale.outer, rowScale.inner, rowScale.innerStep, rowScale.outerStrides],
    [[6], 4, [1, 0], [[4], [1]]],
  );
});

// ---- arithmetic --------------------------------------------------------------------------------------

test("Div and Sub on negative floats; float64 keeps full precision", () => {
  assertClose(
    run("Div", [f32([-7, 7, -1, 0]), f32([2, -2, 3, -4])]),
    [-3.5, -3.5, Math.fround(-1 / 3), -0],
    0,
  );
  const d = run("Div", [f64([1]), f64([3])]);
  assert.equal(d.type, "float64");
  assert.equal(d.getNumber(0), 1 / 3);
  assertClose(run("Sub", [f64([-1.5, 0.1]), f64([2.25, 0.2])]), [-3.75, 0.1 - 0.2], 0);
});

test("integer arithmetic: truncating division, C wrap-around, int64 in bigint", () => {
  assertExact(run("Div", [i32([-7, 7, -7, 7]), i32([2, 2, -2, -2])]), "int32", [-3, 3, 3, -3]);
  assertExact(run("Div", [i64([-7, 9007199254740993n]), i64([2, 1])]), "int64", [-3n, 9007199254740993n]);
  assertExact(run("Mul", [i32([65536, 2147483647, -3]), i32([65536, 2, 5])]), "int32", [0, -2, -15]);
  assertExact(
    run("Add", [new Tensor("int8", [127, -128], [2]), new Tensor("int8", [1, -1], [2])]),
    "int8",
    [-128, 127],
  );
  assertExact(
    run("Sub", [new Tensor("uint8", [0, 200], [2]), new Tensor("uint8", [1, 100], [2])]),
    "uint8",
    [255, 100],
  );
  // int64 beyond 2^53 stays exact and wraps at 2^63.
  const big = 2n ** 62n + 1n;
  assertExact(run("Add", [i64([big, 9223372036854775807n]), i64([big, 1])]), "int64", [
    -(2n ** 63n) + 2n,
    -(2n ** 63n),
  ]);
  assertExact(run("Mul", [i64([3037000500n, -5]), i64([3037000500n, 7])]), "int64", [
    BigInt.asIntN(64, 3037000500n * 3037000500n),
    -35n,
  ]);
  assertExact(
    run("Add", [i64([1, 2, 3], [3, 1]), i64([10, 20], [1, 2])]),
    "int64",
    [11n, 21n, 12n, 22n, 13n, 23n],
    [3, 2],
  );
});

test("integer division and modulo by zero raise OpError; dtype mismatches raise OpError", () => {
  assert.throws(() => run("Div", [i32([1, 2]), i32([1, 0])]), /division by zero/);
  assert.throws(() => run("Mod", [i64([1]), i64([0])]), /division by zero/);
  assert.throws(() => run("Add", [f32([1]), f64([1])]), OpError);
  assert.throws(() => run("Add", [bool([1]), bool([1])]), OpError);
  assert.throws(() => run("Sqrt", [i32([4])]), OpError);
  // float division by zero is IEEE, not an error
  assertClose(run("Div", [f32([1, -1, 0]), f32([0, 0, 0])]), [Infinity, -Infinity, NaN]);
});

test("Mod: fmod=0 takes the divisor's sign, fmod=1 the dividend's (spec examples)", () => {
  const x = [-4, 7, 5, 4, -7, 8];
  const y = [2, -3, 8, -2, 3, 5];
  assertExact(run("Mod", [i32(x), i32(y)]), "int32", [0, -2, 5, 0, 2, 3]);
  assertExact(run("Mod", [i64(x), i64(y)]), "int64", [0n, -2n, 5n, 0n, 2n, 3n]);
  assertExact(run("Mod", [i32(x), i32(y)], { fmod: 1 }), "int32", [0, 1, 5, 0, -1, 3]);
  assertExact(run("Mod", [i64(x), i64(y)], { fmod: 1 }), "int64", [0n, 1n, 5n, 0n, -1n, 3n]);
  const fx = [-4.3, 7.2, 5.0, 4.3, -7.2, 8.0];
  const fy = [2.1, -3.4, 8.0, -2.1, 3.4, 5.0];
  const expected = fx.map((v, i) => Math.fround(Math.fround(v) % Math.fround(fy[i]!)));
  assertClose(run("Mod", [f32(fx), f32(fy)], { fmod: 1 }), expected, 0);
  assertClose(run("Mod", [f32(fx), f32(fy)], { fmod: 1 }), [-0.1, 0.4, 5, 0.1, -0.4, 3], 1e-5);
  assert.throws(() => run("Mod", [f32(fx), f32(fy)]), /fmod must be 1/);
  // broadcast: every element mod a scalar divisor
  assertExact(run("Mod", [i32([-5, 5], [2]), scalar("int32", 3)]), "int32", [1, 2]);
});

test("Pow: float, mixed exponent dtype, int32 and exact int64", () => {
  assertClose(run("Pow", [f32([1, 2, 3]), f32([1, 2, 3])]), [1, 4, 27], 0);
  assertClose(run("Pow", [f32([-2, 1.5, 4, -3]), scalar("float32", 2)]), [4, 2.25, 16, 9], 0);
  assertClose(run("Pow", [f32([-2, 1.5]), scalar("float32", 3)]), [-8, 3.375], 0);
  assertClose(run("Pow", [f32([4, 2]), scalar("float32", 0.5)]), [2, Math.fround(Math.SQRT2)], 0);
  assertClose(run("Pow", [f32([2, -2]), i64([3, 2])]), [8, 4], 0);
  assertClose(run("Pow", [f32([1, -1]), f32([Number.NaN, Number.POSITIVE_INFINITY])]), [1, 1], 0);
  assertClose(run("Pow", [f32([-8]), f32([1 / 3])]), [Number.NaN]);
  assertExact(run("Pow", [i32([2, -3, 5]), i32([10, 3, 0])]), "int32", [1024, -27, 1]);
  assertExact(run("Pow", [i64([2, -3, 3]), i64([62, 3, 40])]), "int64", [
    2n ** 62n,
    -27n,
    BigInt.asIntN(64, 3n ** 40n),
  ]);
  assertExact(run("Pow", [i64([2, 1, -1]), i64([-1, -5, -3])]), "int64", [0n, 1n, -1n]);
  assert.equal(run("Pow", [i32([2]), f32([0.5])]).type, "int32");
});

test("Min/Max are variadic with broadcasting and propagate NaN", () => {
  const a = f32([1, 5, -2], [3]);
  const b = f32([3, 0], [2, 1]);
  const c = scalar("float32", 4);
  assertClose(run("Max", [a, b, c]), [4, 5, 4, 4, 5, 4], 0, [2, 3]);
  assertClose(run("Min", [a, b, c]), [1, 3, -2, 0, 0, -2], 0, [2, 3]);
  assertClose(run("Max", [f32([1, Number.NaN]), f32([Number.NaN, 2])]), [Number.NaN, Number.NaN]);
  assertExact(run("Min", [i64([5n, -(2n ** 60n)]), i64([2n ** 60n, 3])]), "int64", [5n, -(2n ** 60n)]);
  const input = i32([3, 1]);
  const single = run("Max", [input]);
  assertExact(single, "int32", [3, 1]);
  assert.notEqual(single.data, input.data);
});

test("Sum/Mean are variadic with broadcasting", () => {
  const a = f32([1, 5, -2], [3]);
  const b = f32([3, 0], [2, 1]);
  const c = scalar("float32", 4);
  assertClose(run("Sum", [a, b, c]), [8, 12, 5, 5, 9, 2], 0, [2, 3]);
  assertClose(run("Mean", [a, b, c]), [8 / 3, 4, 5 / 3, 5 / 3, 3, 2 / 3], 1e-7, [2, 3]);
  assertClose(run("Sum", [a]), [1, 5, -2], 0);
  assertExact(run("Sum", [i64([2n ** 60n, 1]), i64([2n ** 60n, 2])]), "int64", [2n ** 61n, 3n]);
  assertClose(run("Mean", [f16([1, 2]), f16([2, 2]), f16([0.5, 2])]), [3.5 / 3, 2], 1e-3);
  assert.throws(() => run("Mean", [i32([1]), i32([2])]), OpError);
});

// ---- comparison and logic ----------------------------------------------------------------------------

test("comparisons return bool and follow IEEE NaN rules", () => {
  const x = f32([1, 2, Number.NaN, -1]);
  const y = f32([2, 2, Number.NaN, -2]);
  assertExact(run("Equal", [x, y]), "bool", [0, 1, 0, 0]);
  assertExact(run("Less", [x, y]), "bool", [1, 0, 0, 0]);
  assertExact(run("Greater", [x, y]), "bool", [0, 0, 0, 1]);
  assertExact(run("LessOrEqual", [x, y]), "bool", [1, 1, 0, 0]);
  assertExact(run("GreaterOrEqual", [x, y]), "bool", [0, 1, 0, 1]);
  // int64 beyond 2^53 compares exactly
  assertExact(run("Equal", [i64([2n ** 53n + 1n, 3]), i64([2n ** 53n, 3])]), "bool", [0, 1]);
  assertExact(run("Less", [i64([1, 2, 3], [3, 1]), i64([2], [1])]), "bool", [1, 0, 0], [3, 1]);
  assertExact(run("Equal", [bool([0, 1, 1]), bool([0, 0, 1])]), "bool", [1, 0, 1]);
  assertExact(run("Less", [f16([0.5, 2]), f16([1, 1])]), "bool", [1, 0]);
  assert.throws(() => run("Less", [bool([0]), bool([1])]), OpError);
});

test("And/Or/Xor/Not on bool with broadcasting", () => {
  const a = bool([0, 0, 1, 1], [4]);
  const b = bool([0, 1, 0, 1], [4]);
  assertExact(run("And", [a, b]), "bool", [0, 0, 0, 1]);
  assertExact(run("Or", [a, b]), "bool", [0, 1, 1, 1]);
  assertExact(run("Xor", [a, b]), "bool", [0, 1, 1, 0]);
  assertExact(run("Not", [a]), "bool", [1, 1, 0, 0]);
  assertExact(run("And", [bool([1, 0], [2, 1]), bool([1, 1, 0], [3])]), "bool", [1, 1, 0, 0, 0, 0], [2, 3]);
  assert.throws(() => run("And", [i32([1]), i32([1])]), OpError);
});

test("IsNaN and IsInf", () => {
  const x = f32([Number.NaN, 1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  assertExact(run("IsNaN", [x]), "bool", [1, 0, 0, 0]);
  assertExact(run("IsNaN", [f16([Number.NaN, 0])]), "bool", [1, 0]);
  assertExact(run("IsInf", [x]), "bool", [0, 0, 1, 1]);
  assertExact(run("IsInf", [x], { detect_negative: 0 }), "bool", [0, 0, 1, 0]);
  assertExact(run("IsInf", [x], { detect_positive: 0 }), "bool", [0, 0, 0, 1]);
});

// ---- Where / Clip ------------------------------------------------------------------------------------

test("Where broadcasts condition, X and Y; copies int64 and float16 exactly", () => {
  const cond = bool([1, 0], [2, 1]);
  const x = f32([1, 2, 3], [1, 3]);
  const y = scalar("float32", -1);
  assertClose(run("Where", [cond, x, y]), [1, 2, 3, -1, -1, -1], 0, [2, 3]);
  assertExact(run("Where", [bool([0, 1, 1]), i64([2n ** 60n + 1n]), i64([-7, -8, -9])]), "int64", [
    -7n,
    2n ** 60n + 1n,
    2n ** 60n + 1n,
  ]);
  const h = run("Where", [bool([1, 0]), f16([0.1, 0.2]), f16([0.3, Number.NaN])]);
  assertExact(h, "float16", [floatToHalf(0.1), floatToHalf(Number.NaN)]);
  assert.throws(() => run("Where", [f32([1]), x, x]), OpError);
  assert.throws(() => run("Where", [cond, x, i32([1])]), OpError);
});

test("Clip: opset 6 attributes vs opset 11+ optional inputs", () => {
  const x = f32([-3, -1, 0, 2, 5, Number.NaN]);
  assertClose(run("Clip", [x], { min: -1.5, max: 2.5 }, { opset: 6 }), [-1.5, -1, 0, 2, 2.5, Number.NaN]);
  // Clip-6 defaults are ±FLT_MAX, so infinities clip to it.
  const inf = f32([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  assertClose(run("Clip", [inf], {}, { opset: 6 }), [3.4028234663852886e38, -3.4028234663852886e38], 0);
  // In opset 11+ the attributes mean nothing; bounds come from inputs, each optional.
  assertClose(run("Clip", [x, scalar("float32", -1.5), scalar("float32", 2.5)], {}, { opset: 13 }), [
    -1.5,
    -1,
    0,
    2,
    2.5,
    Number.NaN,
  ]);
  assertClose(run("Clip", [x, undefined, scalar("float32", 1)], {}, { opset: 11 }), [
    -3,
    -1,
    0,
    1,
    1,
    Number.NaN,
  ]);
  assertClose(run("Clip", [x, scalar("float32", 0)], {}, { opset: 11 }), [0, 0, 0, 2, 5, Number.NaN]);
  assertClose(run("Clip", [inf], {}, { opset: 11 }), [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY], 0);
  // min > max: everything becomes max.
  assertClose(
    run("Clip", [f32([-5, 0, 5]), scalar("float32", 3), scalar("float32", 1)], {}, { opset: 13 }),
    [1, 1, 1],
  );
  // integers from opset 12
  assertExact(
    run("Clip", [i32([-9, 4, 9]), scalar("int32", -2), scalar("int32", 5)], {}, { opset: 13 }),
    "int32",
    [-2, 4, 5],
  );
  assertExact(run("Clip", [i64([-(2n ** 62n), 4]), i64([0], [])], {}, { opset: 13 }), "int64", [0n, 4n]);
  assert.throws(() => run("Clip", [i32([1])], {}, { opset: 11 }), OpError);
  assert.throws(() => run("Clip", [x, f32([0, 1])], {}, { opset: 13 }), /scalar/);
  // float16
  const h = run("Clip", [f16([-2, 0.5, 3]), f16([-1], []), f16([1], [])], {}, { opset: 13 });
  assertClose(h, [-1, 0.5, 1], 0);
});

// ---- unary -------------------------------------------------------------------------------------------

test("unary math ops match float64 references", () => {
  const xs = [-2.5, -1, -0.3, 0, 0.7, 1, 3.25];
  const pos = [0.01, 0.5, 1, 2, 9, 1e6];
  const check = (op: string, values: number[], f: (v: number) => number, tol = 1e-7) =>
    assertClose(
      run(op, [f32(values)]),
      values.map((v) => f(Math.fround(v))),
      tol,
    );
  check("Sqrt", pos, Math.sqrt);
  check("Log", pos, Math.log);
  check("Exp", xs, Math.exp);
  check("Tanh", xs, Math.tanh);
  check("Sigmoid", [...xs, -800, 800], (v) => 1 / (1 + Math.exp(-v)));
  check("Cos", xs, Math.cos);
  check("Sin", xs, Math.sin);
  check("Reciprocal", pos, (v) => 1 / v);
  check("Neg", xs, (v) => -v, 0);
  check("Abs", xs, Math.abs, 0);
  check("Relu", xs, (v) => Math.max(v, 0), 0);
  check("Floor", xs, Math.floor, 0);
  check("Ceil", xs, Math.ceil, 0);
  check("Sign", xs, Math.sign, 0);
  // half-to-even rounding
  assertClose(run("Round", [f32([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6])]), [0, 2, 2, -0, -2, 2, -3], 0);
  assertClose(run("Sqrt", [f32([-1])]), [Number.NaN]);
  assertClose(run("Log", [f32([0])]), [Number.NEGATIVE_INFINITY], 0);
  assertClose(run("Relu", [f32([Number.NaN])]), [Number.NaN]);
});

test("Erf is accurate to float64 precision", () => {
  // Published values of erf.
  const table: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [1.5, 0.9661051464753108],
    [2, 0.9953222650189527],
    [2.5, 0.999593047982555],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
  ];
  const x = f64([...table.map(([v]) => v), ...table.map(([v]) => -v), 0, 7, -30, Number.NaN]);
  const expected = [...table.map(([, e]) => e), ...table.map(([, e]) => -e), 0, 1, -1, Number.NaN];
  assertClose(run("Erf", [x]), expected, 3e-15);
  // Against the series on a dense grid (series is exact enough up to 2.5).
  const grid = seq(251, (i) => -2.5 + i * 0.02);
  assertClose(run("Erf", [f64(grid)]), grid.map(erfRef), 2e-14);
  // Integer Erf truncates (opset 13 allows integer inputs).
  assertExact(run("Erf", [i32([-3, 0, 2])]), "int32", [0, 0, 0]);
});

test("float32 Erf is within float32 rounding of the exact value", () => {
  const table: [number, number][] = [
    [0.1, 0.1124629160182849],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
  ];
  const x = f32([...table.map(([v]) => v), ...table.map(([v]) => -v), 0, 7, -30]);
  const expected = [...table.map(([, e]) => e), ...table.map(([, e]) => -e), 0, 1, -1];
  assertClose(run("Erf", [x]), expected, 1.2e-7);
  const grid = seq(501, (i) => -2.5 + i * 0.01);
  const fromF32 = grid.map((v) => Math.fround(v));
  assertClose(run("Erf", [f32(fromF32)]), fromF32.map(erfRef), 1.2e-7);
  assert.ok(Number.isNaN(run("Erf", [f32([Number.NaN])]).getNumber(0)));
});

test("Gelu (opset 20): exact and tanh approximations", () => {
  const xs = [-3, -1, -0.5, 0, 0.5, 1, 2, 3.5];
  const exact = xs.map((v) => 0.5 * v * (1 + erfRef(v / Math.SQRT2)));
  const tanh = xs.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
  assertClose(run("Gelu", [f64(xs)], {}, { opset: 20 }), exact, 1e-14);
  assertClose(run("Gelu", [f64(xs)], { approximate: "tanh" }, { opset: 20 }), tanh, 1e-14);
  assertClose(run("Gelu", [f32(xs)], { approximate: "none" }, { opset: 20 }), exact, 1e-6);
  // the two differ measurably
  assert.ok(Math.abs(exact[1]! - tanh[1]!) > 1e-5);
  assert.throws(() => run("Gelu", [f32(xs)], { approximate: "fast" }, { opset: 20 }), OpError);
});

test("unary integer paths: Neg/Abs/Relu/Sign on int32 and int64", () => {
  assertExact(run("Neg", [i32([-3, 0, 2147483647, -2147483648])]), "int32", [3, 0, -2147483647, -2147483648]);
  assertExact(run("Abs", [i64([-(2n ** 62n), 5])]), "int64", [2n ** 62n, 5n]);
  assertExact(run("Relu", [i64([-4, 4])]), "int64", [0n, 4n]);
  assertExact(run("Relu", [new Tensor("int8", [-4, 4], [2])]), "int8", [0, 4]);
  assertExact(run("Sign", [i64([-9, 0, 9])]), "int64", [-1n, 0n, 1n]);
  assertExact(run("Abs", [new Tensor("uint8", [200], [1])]), "uint8", [200]);
  assert.throws(() => run("Neg", [new Tensor("uint8", [1], [1])]), OpError);
});

// ---- float16 -----------------------------------------------------------------------------------------

test("float16 computes in float32 and rounds once to half", () => {
  const a = [1.5, 2.25, -0.1, 1000, 65504];
  const b = [0.25, 0.001, 0.3, 0.7, 65504];
  const halves = (vs: number[]) => vs.map((v) => halfToFloat(floatToHalf(v)));
  const ha = halves(a);
  const hb = halves(b);
  const sum = run("Add", [f16(a), f16(b)]);
  assert.equal(sum.type, "float16");
  assertExact(
    sum,
    "float16",
    ha.map((v, i) => floatToHalf(Math.fround(v + hb[i]!))),
  );
  assert.equal(sum.getNumber(4), Number.POSITIVE_INFINITY); // overflow past the half range
  assertExact(
    run("Div", [f16(a), f16(b)]),
    "float16",
    ha.map((v, i) => floatToHalf(Math.fround(v / hb[i]!))),
  );
  assertExact(
    run("Sqrt", [f16([2, 3, 0.5])]),
    "float16",
    [2, 3, 0.5].map((v) => floatToHalf(Math.fround(Math.sqrt(v)))),
  );
  assertExact(
    run("Gelu", [f16([-1, 0.5, 2])], { approximate: "tanh" }, { opset: 20 }),
    "float16",
    halves([-1, 0.5, 2]).map((v) =>
      floatToHalf(Math.fround(0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))))),
    ),
  );
});

// ---- Cast --------------------------------------------------------------------------------------------

const ONNX = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11 };

test("Cast float → integers truncates toward zero; → bool is != 0", () => {
  const x = f32([-2.7, -0.5, 0.5, 2.7, 127.9, -128.9]);
  assertExact(run("Cast", [x], { to: ONNX.int32 }), "int32", [-2, 0, 0, 2, 127, -128]);
  assertExact(run("Cast", [x], { to: ONNX.int64 }), "int64", [-2n, 0n, 0n, 2n, 127n, -128n]);
  assertExact(run("Cast", [x], { to: ONNX.int8 }), "int8", [-2, 0, 0, 2, 127, -128]);
  assertExact(run("Cast", [f64([3e9, -1, 2 ** 53 + 2])], { to: ONNX.int64 }), "int64", [
    3000000000n,
    -1n,
    2n ** 53n + 2n,
  ]);
  assertExact(run("Cast", [f32([0, -0, Number.NaN, 0.1, -3])], { to: ONNX.bool }), "bool", [0, 0, 1, 1, 1]);
  assertExact(run("Cast", [i64([0, 2n ** 40n])], { to: ONNX.bool }), "bool", [0, 1]);
  // undefined in ONNX; we give x86 onnxruntime's INT_MIN
  assertExact(
    run("Cast", [f32([Number.NaN, 1e10])], { to: ONNX.int32 }),
    "int32",
    [-2147483648, -2147483648],
  );
});

test("Cast between integer widths wraps; bool/int → float; float → float16", () => {
  assertExact(run("Cast", [i32([-1, 256, 300])], { to: ONNX.uint8 }), "uint8", [255, 0, 44]);
  assertExact(run("Cast", [i64([2n ** 32n + 5n, -1])], { to: ONNX.int32 }), "int32", [5, -1]);
  assertExact(run("Cast", [i64([2n ** 32n + 200n])], { to: ONNX.int8 }), "int8", [-56]);
  assertExact(run("Cast", [i32([-5, 7])], { to: ONNX.int64 }), "int64", [-5n, 7n]);
  assertExact(run("Cast", [bool([1, 0])], { to: ONNX.float32 }), "float32", [1, 0]);
  assertExact(run("Cast", [i64([2n ** 53n + 1n])], { to: ONNX.float64 }), "float64", [2 ** 53]);
  assertExact(run("Cast", [f32([0.1, 65520, 1e-8])], { to: ONNX.float16 }), "float16", [
    floatToHalf(0.1),
    0x7c00,
    0,
  ]);
  assertExact(run("Cast", [f16([0.1])], { to: ONNX.float32 }), "float32", [
    Math.fround(halfToFloat(floatToHalf(0.1))),
  ]);
  assertExact(run("Cast", [f64([0.1])], { to: ONNX.float32 }), "float32", [Math.fround(0.1)]);
  const same = f32([1, 2]);
  const copy = run("Cast", [same], { to: ONNX.float32 });
  assert.notEqual(copy.data, same.data);
  assertExact(copy, "float32", [1, 2]);
  assert.throws(() => run("Cast", [same], { to: 8 }), /not supported/); // string
  assert.throws(() => run("Cast", [same]), OpError); // `to` is required
});

test("CastLike takes the dtype of its second input", () => {
  assertExact(run("CastLike", [f32([1.9, -1.9]), i64([0])]), "int64", [1n, -1n]);
  assertExact(run("CastLike", [i32([3]), f16([0])]), "float16", [floatToHalf(3)]);
});

// ---- com.microsoft activations -----------------------------------------------------------------------

const MS = { domain: "com.microsoft", opset: 1 };

test("com.microsoft Gelu / FastGelu / BiasGelu / QuickGelu", () => {
  const xs = [-2, -0.5, 0, 0.5, 1, 3];
  const bias = [0.1, -0.2, 0.3];
  const x = f64(xs, [2, 3]);
  const erfGelu = (v: number) => 0.5 * v * (1 + erfRef(v / Math.SQRT2));
  const tanhGelu = (v: number) => 0.5 * v * (1 + Math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
  const biased = xs.map((v, i) => v + bias[i % 3]!);
  assertClose(run("Gelu", [x], {}, MS), xs.map(erfGelu), 1e-14, [2, 3]);
  assertClose(run("FastGelu", [x], {}, MS), xs.map(tanhGelu), 1e-14);
  assertClose(run("FastGelu", [x, f64(bias)], {}, MS), biased.map(tanhGelu), 1e-14);
  assertClose(run("BiasGelu", [x, f64(bias)], {}, MS), biased.map(erfGelu), 1e-14);
  assertClose(
    run("QuickGelu", [x], {}, MS),
    xs.map((v) => v / (1 + Math.exp(-1.702 * v))),
    1e-14,
  );
  assertClose(
    run("QuickGelu", [x], { alpha: floatAttr(1) }, MS),
    xs.map((v) => v / (1 + Math.exp(-v))),
    1e-14,
  );
  // float32: the bias add rounds to float32 first
  const f = run("BiasGelu", [f32(xs, [2, 3]), f32(bias)], {}, MS);
  assertClose(
    f,
    xs.map((v, i) => erfGelu(Math.fround(Math.fround(v) + Math.fround(bias[i % 3]!)))),
    1e-6,
  );
  assert.throws(() => run("BiasGelu", [x, f64([1, 2])], {}, MS), /bias/);
  assert.throws(() => run("BiasGelu", [x], {}, MS), /missing/);
});

// ---- type inference ----------------------------------------------------------------------------------

function infer(
  opType: string,
  inputs: ({ dtype: DType; shape?: Dim[] } | undefined)[],
  attrs = {},
  opset = 17,
) {
  const node = nodeOf(opType, inputs.length, attrs, "");
  return getOp(node).inferTypes({ node, opset, inputs, constant: () => undefined });
}

test("inferTypes broadcasts symbolic shapes and sets output dtypes", () => {
  assert.deepEqual(
    infer("Add", [
      { dtype: "float32", shape: ["batch", 1, 4] },
      { dtype: "float32", shape: [3, 1] },
    ]),
    [{ dtype: "float32", shape: ["batch", 3, 4] }],
  );
  assert.deepEqual(
    infer("Less", [
      { dtype: "int64", shape: ["n"] },
      { dtype: "int64", shape: [] },
    ]),
    [{ dtype: "bool", shape: ["n"] }],
  );
  assert.deepEqual(
    infer("Where", [
      { dtype: "bool", shape: [1, "s"] },
      { dtype: "float16", shape: ["b", 1] },
      { dtype: "float16", shape: [] },
    ]),
    [{ dtype: "float16", shape: ["b", "s"] }],
  );
  assert.deepEqual(infer("Cast", [{ dtype: "float32", shape: ["b", 2] }], { to: ONNX.int64 }), [
    { dtype: "int64", shape: ["b", 2] },
  ]);
  assert.deepEqual(
    infer("Pow", [
      { dtype: "float32", shape: [2, 3] },
      { dtype: "int64", shape: [] },
    ]),
    [{ dtype: "float32", shape: [2, 3] }],
  );
  assert.deepEqual(infer("Add", [{ dtype: "float32", shape: [2] }, { dtype: "float32" }]), [
    { dtype: "float32", shape: undefined },
  ]);
  assert.deepEqual(infer("IsNaN", [{ dtype: "float32", shape: [5] }]), [{ dtype: "bool", shape: [5] }]);
  assert.throws(
    () =>
      infer("Add", [
        { dtype: "float32", shape: [2] },
        { dtype: "float32", shape: [3] },
      ]),
    OpError,
  );
  assert.throws(
    () =>
      infer("Add", [
        { dtype: "float32", shape: [2] },
        { dtype: "int32", shape: [2] },
      ]),
    OpError,
  );
  assert.throws(() => infer("Clip", [{ dtype: "int32", shape: [2] }], {}, 11), MhafuseError);
});

test("legacy opset-6 Add broadcasts B along `axis` when broadcast=1", () => {
  const a = f32(
    seq(6, (i) => i),
    [2, 3],
  );
  assertClose(
    run("Add", [a, f32([10, 20])], { broadcast: 1, axis: 0 }, { opset: 6 }),
    [10, 11, 12, 23, 24, 25],
    0,
  );
  assertClose(
    run("Add", [a, f32([10, 20, 30])], { broadcast: 1 }, { opset: 6 }),
    [10, 21, 32, 13, 24, 35],
    0,
  );
  assert.throws(() => run("Add", [a, f32([10, 20, 30])], {}, { opset: 6 }), /shapes must match/);
});

// ---- cross-check against onnxruntime -----------------------------------------------------------------

/** Builds a one-op graph, runs it with onnxruntime-node and with our kernel, returns both outputs. */
async function againstOrt(
  opType: string,
  inputs: Tensor[],
  attrs: Record<string, AttrValue> = {},
  opts: { opset?: number; domain?: string } = {},
): Promise<{ ours: Tensor; theirs: ort.Tensor }> {
  const b = new GraphBuilder({ opset: opts.opset ?? 17 });
  const names = inputs.map((t, i) => b.input(`x${i}`, t.type, [...t.dims]));
  const out = b.op(opType, names, Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, v])), {
    domain: opts.domain ?? "",
  });
  b.output(out);
  const session = await ort.InferenceSession.create(saveModel(modelFromGraph(b.build())));
  const feeds = Object.fromEntries(
    inputs.map((t, i) => [`x${i}`, new ort.Tensor(t.type as "float32", t.data as Float32Array, [...t.dims])]),
  );
  const theirs = (await session.run(feeds))[out]!;
  return { ours: run(opType, inputs, attrs, opts), theirs };
}

function randomF32(n: number, seed: number, scale = 3): number[] {
  let s = seed;
  return seq(n, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648 - 0.5) * 2 * scale;
  });
}

test("elementwise kernels agree with onnxruntime-node", async () => {
  const shapeA = [2, 3, 8];
  const a = f32(randomF32(48, 1), shapeA);
  const b = f32(randomF32(8, 2), [8]);
  const col = f32(randomF32(6, 3), [2, 3, 1]);
  const pos = f32(
    randomF32(48, 4).map((v) => Math.abs(v) + 0.1),
    shapeA,
  );
  const cases: [string, Tensor[], Record<string, AttrValue>?, { opset?: number; domain?: string }?][] = [
    ["Add", [a, b]],
    ["Sub", [col, a]],
    ["Mul", [a, col]],
    ["Div", [a, pos]],
    ["Pow", [pos, b]],
    ["Pow", [a, scalar("float32", 2)]],
    ["Mod", [a, b], { fmod: 1 }],
    ["Min", [a, b, col]],
    ["Max", [a, b, col]],
    ["Sum", [a, b, col]],
    ["Mean", [a, b, col]],
    ["Sqrt", [pos]],
    ["Exp", [a]],
    ["Log", [pos]],
    ["Erf", [a]],
    ["Tanh", [a]],
    ["Sigmoid", [a]],
    ["Relu", [a]],
    ["Neg", [a]],
    ["Abs", [a]],
    ["Reciprocal", [pos]],
    ["Cos", [a]],
    ["Sin", [a]],
    ["Clip", [a, scalar("float32", -1), scalar("float32", 0.5)], {}, { opset: 13 }],
    ["Gelu", [a], {}, { opset: 20 }],
    ["Gelu", [a], { approximate: "tanh" }, { opset: 20 }],
    ["FastGelu", [a, b], {}, { domain: "com.microsoft" }],
    ["BiasGelu", [a, b], {}, { domain: "com.microsoft" }],
    ["Gelu", [a], {}, { domain: "com.microsoft" }],
    ["Add", [f16(randomF32(48, 5), shapeA), f16(randomF32(8, 6), [8])]],
    ["Mul", [f16(randomF32(48, 7), shapeA), f16(randomF32(6, 8), [2, 3, 1])]],
    ["Cast", [a], { to: ONNX.int32 }],
    ["Cast", [a], { to: ONNX.float16 }],
    ["Cast", [a], { to: ONNX.bool }],
    ["Div", [i64([-7, 7, -9, 100], [4]), i64([2, -2, 4, 7], [4])]],
    ["Mod", [i64([-7, 7, -9, 100], [4]), i64([2, -2, 4, 7], [4])]],
    ["Mod", [i32([-7, 7, -9, 100], [4]), i32([2, -2, 4, 7], [4])], { fmod: 1 }],
    ["Less", [a, b]],
    ["Equal", [i64([1, 2, 3], [3, 1]), i64([2, 3], [2])]],
    [
      "Where",
      [
        new Tensor(
          "bool",
          randomF32(8, 9).map((v) => (v > 0 ? 1 : 0)),
          [8],
        ),
        a,
        col,
      ],
    ],
  ];
  for (const [op, inputs, attrs, opts] of cases) {
    const { ours, theirs } = await againstOrt(op, inputs, attrs ?? {}, opts ?? {});
    const label = `${op}(${inputs.map((t) => `${t.type}[${t.dims}]`).join(", ")})`;
    assert.equal(ours.type, theirs.type, label);
    assert.deepEqual([...ours.dims], [...theirs.dims], label);
    const theirsT = new Tensor(theirs.type as DType, theirs.data as Float32Array, [...theirs.dims]);
    const expected = theirsT.toNumbers();
    const tol = ours.type === "float16" ? 1e-3 : 2e-6;
    assertClose(ours, expected, tol);
  }
});
