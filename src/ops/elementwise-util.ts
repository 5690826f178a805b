/**
 * Shared machinery of the elementwise op families: dtype sets and checks, numpy-style broadcasting
 * (shape rules and a row-wise iteration plan), float16 staging, and the erf/GELU math.
 */
import { assert, OpError } from "../errors.js";
import { allocate, type DType, type TypedArray } from "../ir/dtype.js";
import { floatToHalf, halfToFloat } from "../ir/float16.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { broadcastDims, broadcastSymbolic } from "../ir/shape.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import type { TypeContext } from "./registry.js";

// ---- dtype sets --------------------------------------------------------------------------------------

export const FLOAT_TYPES: readonly DType[] = ["float32", "float16", "float64"];
export const SIGNED_INT_TYPES: readonly DType[] = ["int64", "int32", "int8"];
export const INT_TYPES: readonly DType[] = [...SIGNED_INT_TYPES, "uint8"];
export const NUMERIC_TYPES: readonly DType[] = [...FLOAT_TYPES, ...INT_TYPES];
export const SIGNED_NUMERIC_TYPES: readonly DType[] = [...FLOAT_TYPES, ...SIGNED_INT_TYPES];
export const ALL_TYPES: readonly DType[] = [...NUMERIC_TYPES, "bool"];

/** Throws OpError unless `dtype` is one the op accepts for input `index`. */
export function requireDType(node: Node, index: number, dtype: DType, allowed: readonly DType[]): void {
  if (!allowed.includes(dtype)) {
    throw new OpError(node, `input ${index} has dtype ${dtype}; expected one of ${allowed.join(", ")}`);
  }
}

/** Throws OpError unless all given inputs share one dtype (ONNX type variable T binds them); returns it. */
export function requireSameDType(node: Node, dtypes: readonly (DType | undefined)[]): DType | undefined {
  let first: DType | undefined;
  dtypes.forEach((t, i) => {
    if (t === undefined) return;
    if (first === undefined) first = t;
    else if (t !== first)
      throw new OpError(node, `input ${i} has dtype ${t} but an earlier input has ${first}`);
  });
  return first;
}

/** The input tensor, or an OpError naming the input when the node omitted a required one. */
export function requireInput<T>(node: Node, inputs: readonly (T | undefined)[], index: number): T {
  const t = inputs[index];
  if (t === undefined) throw new OpError(node, `required input ${index} is missing`);
  return t;
}

// ---- broadcasting: shapes ----------------------------------------------------------------------------

/** Multidirectional (numpy) broadcast of concrete shapes; OpError when they are incompatible. */
export function broadcastShapes(node: Node, shapes: readonly (readonly number[])[]): number[] {
  let out: number[] = [];
  for (const s of shapes) {
    const next = broadcastDims(out, s);
    if (!next) {
      throw new OpError(node, `shapes ${shapes.map((x) => `[${x}]`).join(", ")} cannot be broadcast`);
    }
    out = next;
  }
  return out;
}

/** Symbolic broadcast for type inference; undefined when any rank is unknown, OpError when incompatible. */
export function broadcastShapesSymbolic(
  node: Node,
  shapes: readonly (readonly Dim[] | undefined)[],
): Dim[] | undefined {
  let out: Dim[] = [];
  for (const s of shapes) {
    if (!s) return undefined;
    const next = broadcastSymbolic(out, s);
    if (!next) {
      throw new OpError(
        node,
        `shapes ${shapes.map((x) => `[${x?.join(",")}]`).join(", ")} cannot be broadcast`,
      );
    }
    out = next;
  }
  return out;
}

/**
 * Type rule shared by broadcasting ops: inputs at `indices` share dtype T (checked against `allowed`),
 * the output has dtype `outDType` (default T) and the broadcast shape.
 */
export function inferBroadcast(
  ctx: TypeContext,
  indices: readonly number[],
  allowed: readonly DType[],
  outDType?: DType,
): ValueType[] {
  const types = indices.map((i) => ctx.inputs[i]);
  const dtype = requireSameDType(
    ctx.node,
    types.map((t) => t?.dtype),
  );
  types.forEach((t, k) => {
    if (t) requireDType(ctx.node, indices[k]!, t.dtype, allowed);
  });
  const out = outDType ?? dtype;
  if (!out) throw new OpError(ctx.node, "cannot infer the output dtype: no input type is known");
  return [
    {
      dtype: out,
      shape: broadcastShapesSymbolic(
        ctx.node,
        types.map((t) => t?.shape),
      ),
    },
  ];
}

/** Type rule of ops whose output has the input's shape: dtype checked, `outDType` or the input's. */
export function inferSameShape(ctx: TypeContext, allowed: readonly DType[], outDType?: DType): ValueType[] {
  const t = ctx.inputs[0];
  if (!t) throw new OpError(ctx.node, "cannot infer the output type: input 0 has no known type");
  requireDType(ctx.node, 0, t.dtype, allowed);
  return [{ dtype: outDType ?? t.dtype, shape: t.shape ? [...t.shape] : undefined }];
}

// ---- broadcasting: iteration -------------------------------------------------------------------------

/**
 * How to walk a broadcast: the output is split into rows of `inner` contiguous elements; each input
 * reads its row elements with step `innerStep[k]` (1, or 0 when broadcast along the row), and its row
 * start moves by `outerStrides[k][d]` along each remaining (outer) dimension. Adjacent dimensions that
 * broadcast the same way for every input are merged first, so `x[B,S,H] + bias[H]` becomes rows of H
 * with the bias step 1 and outer stride 0, and same-shape inputs become a single row.
 */
export interface BroadcastPlan {
  outDims: number[];
  size: number;
  outer: number[];
  inner: number;
  outerStrides: number[][];
  innerStep: number[];
}

export function planBroadcast(
  outDims: readonly number[],
  inputDims: readonly (readonly number[])[],
): BroadcastPlan {
  const rank = outDims.length;
  // Per output dim: its size and, per input, its contiguous stride (0 when the input broadcasts there).
  const dims: number[] = [];
  const strides: number[][] = inputDims.map(() => []);
  const accum = inputDims.map(() => 1);
  for (let d = rank - 1; d >= 0; d--) {
    const size = outDims[d]!;
    if (size === 1) continue; // size-1 output dims never move any index
    dims.unshift(size);
    inputDims.forEach((s, k) => {
      const inSize = s[d - (rank - s.length)] ?? 1;
      assert(inSize === size || inSize === 1, "planBroadcast: input does not broadcast to the output");
      strides[k]!.unshift(inSize === 1 ? 0 : accum[k]!);
      accum[k]! *= inSize;
    });
  }
  // Merge dim i into dim i+1 (the faster one) when every input either broadcasts both or is contiguous
  // across both.
  const mDims: number[] = [];
  const mStrides: number[][] = inputDims.map(() => []);
  for (let i = 0; i < dims.length; i++) {
    const last = mDims.length - 1;
    const mergeable =
      last >= 0 &&
      strides.every((s, k) => {
        const prev = mStrides[k]![last]!;
        return prev === 0 ? s[i] === 0 : s[i] !== 0 && prev === s[i]! * dims[i]!;
      });
    if (mergeable) {
      mDims[last]! *= dims[i]!;
      strides.forEach((s, k) => {
        mStrides[k]![last] = s[i]!;
      });
    } else {
      mDims.push(dims[i]!);
      strides.forEach((s, k) => {
        mStrides[k]!.push(s[i]!);
      });
    }
  }
  const inner = mDims.length ? mDims[mDims.length - 1]! : 1;
  const innerStep = mStrides.map((s) => (s.length ? s[s.length - 1]! : 0));
  assert(
    innerStep.every((s) => s === 0 || s === 1),
    "planBroadcast: innermost stride of a contiguous input must be 0 or 1",
  );
  return {
    outDims: [...outDims],
    size: sizeOf(outDims),
    outer: mDims.slice(0, -1),
    inner,
    outerStrides: mStrides.map((s) => s.slice(0, -1)),
    innerStep,
  };
}

/**
 * Calls `visitRow(outStart, inStarts)` for every row of the plan, in output order. `inStarts` is reused
 * between calls (read it, do not keep it).
 */
export function forEachRow(
  plan: BroadcastPlan,
  visitRow: (outStart: number, inStarts: Float64Array) => void,
): void {
  if (plan.size === 0) return;
  const { outer, inner, outerStrides } = plan;
  const nIn = outerStrides.length;
  const starts = new Float64Array(nIn);
  const index = new Float64Array(outer.length);
  const rows = sizeOf(outer);
  for (let row = 0; row < rows; row++) {
    visitRow(row * inner, starts);
    for (let d = outer.length - 1; d >= 0; d--) {
      index[d]!++;
      for (let k = 0; k < nIn; k++) starts[k]! += outerStrides[k]![d]!;
      if (index[d]! < outer[d]!) break;
      for (let k = 0; k < nIn; k++) starts[k]! -= outerStrides[k]![d]! * outer[d]!;
      index[d] = 0;
    }
  }
}

// ---- compute staging: float16 runs as float32 --------------------------------------------------------

let halfTable: Float32Array | undefined;

/** float16 bits → float32 values, through a 64K-entry table built on first use. */
export function decodeHalf(bits: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  const table = halfTable;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

export function encodeHalf(values: Float32Array | Float64Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
  return out;
}

/** Array kernels compute on: the tensor's own data, except float16 which is decoded to float32. */
export function computeView(t: Tensor): TypedArray {
  return t.type === "float16" ? decodeHalf(t.data as Uint16Array) : t.data;
}

/** Output buffer kernels write into; float16 results are staged in float32 (ONNX computes half in float). */
export function allocateCompute(dtype: DType, n: number): TypedArray {
  return dtype === "float16" ? new Float32Array(n) : allocate(dtype, n);
}

/** Wraps a compute buffer (see allocateCompute) as a tensor of `dtype`. */
export function finishCompute(dtype: DType, data: TypedArray, dims: readonly number[]): Tensor {
  const stored = dtype === "float16" ? encodeHalf(data as Float32Array) : data;
  return new Tensor(dtype, stored, dims);
}

// ---- math --------------------------------------------------------------------------------------------

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_PI = 1 / Math.sqrt(Math.PI);
const SERIES_TERMS = 40;
// Reciprocals used by the erf series, so its loop multiplies instead of dividing.
const INV_N = Float64Array.from({ length: SERIES_TERMS + 1 }, (_, n) => (n ? 1 / n : 0));
const INV_2N1 = Float64Array.from({ length: SERIES_TERMS + 1 }, (_, n) => 1 / (2 * n + 1));

/**
 * The error function to about 1e-15 relative error (JS has no Math.erf). |x| < 2: Maclaurin series
 * (terms stay small enough there that cancellation costs under two digits); |x| >= 2: 1 - erfc(x) with
 * erfc from its Laplace continued fraction, which converges fast for large x; |x| >= 6: erf is ±1 in
 * double precision.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n <= SERIES_TERMS; n++) {
      term *= -x2 * INV_N[n]!;
      const c = term * INV_2N1[n]!;
      sum += c;
      if (Math.abs(c) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax >= 6) return x > 0 ? 1 : -1;
  if (Number.isNaN(x)) return x;
  const erfc = erfcTail(ax);
  return x > 0 ? 1 - erfc : erfc - 1;
}

/**
 * erfc(x) for x >= 2 (NaN and +Infinity included), to about 1e-15 relative error: the Laplace continued
 * fraction erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail.
 * Relative accuracy is what GELU's negative tail needs: there 1 + erf(x) would cancel to 0 or to noise.
 */
export function erfcTail(x: number): number {
  const terms = x < 3 ? 48 : 24;
  let t = x;
  for (let k = terms; k >= 1; k--) t = x + (0.5 * k) / t;
  return (Math.exp(-x * x) * INV_SQRT_PI) / t;
}

/**
 * erf for float32 results: a rational approximation x·P(x²)/Q(x²) on [-4, 4] (erf is ±1 to float32 beyond),
 * within 1e-7 of the exact value — under 2 float32 ulps — and about 5x faster than the float64 `erf`.
 */
export function erfFloat32(a: number): number {
  const x = Math.min(4, Math.max(-4, a));
  const x2 = x * x;
  let p = -2.72614225801306e-10;
  p = p * x2 + 2.77068142495902e-8;
  p = p * x2 - 2.10102402082508e-6;
  p = p * x2 - 5.69250639462346e-5;
  p = p * x2 - 7.34990630326855e-4;
  p = p * x2 - 2.95459980854025e-3;
  p = p * x2 - 1.60960333262415e-2;
  let q = -1.45660718464996e-5;
  q = q * x2 - 2.13374055278905e-4;
  q = q * x2 - 1.68282697438203e-3;
  q = q * x2 - 7.37332916720468e-3;
  q = q * x2 - 1.42647390514189e-2;
  return (x * p) / q;
}

const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

// Below this z = x/√2, 1 + erf(z) cancels (erfc(2) = 4.7e-3): GELU takes 0.5·x·erfc(-z) from erfcTail, so a
// large negative x gives a tiny negative number or -0 (x = -1e6 gave 0.025 from the rational erf's error).
const GELU_TAIL_Z = -2;

/** Exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(-x/√2). -Infinity gives NaN, as the formula does. */
export function geluErf(x: number): number {
  const z = x * SQRT1_2;
  if (z < GELU_TAIL_Z) return 0.5 * x * erfcTail(-z);
  return 0.5 * x * (1 + erf(z));
}

/** Exact GELU for float32 results (see erfFloat32; the negative tail as in geluErf). */
export function geluErfFloat32(x: number): number {
  const z = x * SQRT1_2;
  if (z < GELU_TAIL_Z) return 0.5 * x * erfcTail(-z);
  return 0.5 * x * (1 + erfFloat32(z));
}

/**
 * tanh-approximated GELU (ONNX Gelu approximate="tanh", com.microsoft FastGelu): 0.5·x·(1 + tanh(u)). For
 * u < 0, 1 + tanh(u) = 2·e^{2u} / (1 + e^{2u}) without the cancellation (the tail stays relative-exact).
 */
export function geluTanh(x: number): number {
  const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
  if (u >= 0) return 0.5 * x * (1 + Math.tanh(u));
  const e = Math.exp(2 * u);
  return (x * e) / (1 + e);
}

/** Round half to even (ONNX Round, QuantizeLinear's rounding), which Math.round (half up) is not. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : r;
}

export function sigmoid(x: number): number {
  // Split by sign so exp never overflows to Infinity/Infinity.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

// ---- float32 array kernels -----------------------------------------------------------------------------
// Whole-array loops over Float32Array only, defined next to the scalar functions they call so those inline
// into a monomorphic loop (a per-element call across modules is not reliably inlined). Each computes
// exactly what the scalar function gives element by element.

/** y[i] = erfFloat32(x[i]). */
export function erfFloat32Array(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) y[i] = erfFloat32(x[i]!);
}

/** y[i] = geluErfFloat32(x[i]). */
export function geluErfFloat32Array(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) y[i] = geluErfFloat32(x[i]!);
}

/** y[i] = geluTanh(x[i]). */
export function geluTanhFloat32Array(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) y[i] = geluTanh(x[i]!);
}

/** y = geluErfFloat32(fround(x + bias)) with `bias` a row repeated along x (x.length a multiple of it). */
export function biasGeluErfFloat32Array(x: Float32Array, bias: Float32Array, y: Float32Array): void {
  const w = bias.length;
  for (let r = 0; r < x.length; r += w)
    for (let j = 0; j < w; j++) y[r + j] = geluErfFloat32(Math.fround(x[r + j]! + bias[j]!));
}

/** y = geluTanh(fround(x + bias)) with `bias` a row repeated along x (x.length a multiple of it). */
export function biasGeluTanhFloat32Array(x: Float32Array, bias: Float32Array, y: Float32Array): void {
  const w = bias.length;
  for (let r = 0; r < x.length; r += w)
    for (let j = 0; j < w; j++) y[r + j] = geluTanh(Math.fround(x[r + j]! + bias[j]!));
}
