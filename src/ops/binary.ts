/**
 * Binary elementwise ops with multidirectional broadcasting: arithmetic (Add Sub Mul Div Pow Mod),
 * variadic Min/Max, comparisons (→ bool) and boolean logic.
 */
import { OpError } from "../errors.js";
import { type DType, isFloat as isFloatType, type TypedArray } from "../ir/dtype.js";
import type { Node } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import {
  ALL_TYPES,
  allocateCompute,
  broadcastShapes,
  broadcastShapesSymbolic,
  computeView,
  FLOAT_TYPES,
  finishCompute,
  forEachRow,
  inferBroadcast,
  NUMERIC_TYPES,
  planBroadcast,
  requireDType,
  requireInput,
  requireSameDType,
} from "./elementwise-util.js";
import { attrInt, hasAttr, type OpContext, type OpDef, registerOps, type TypeContext } from "./registry.js";

/**
 * Computes `n` output elements from `out[o]` on: element j reads `a[ai + j*as]` and `b[bi + j*bs]`
 * (steps are 0 or 1). Arrays are compute views (float16 already decoded to float32).
 */
export type BinaryRow = (
  out: TypedArray,
  o: number,
  a: TypedArray,
  ai: number,
  as: number,
  b: TypedArray,
  bi: number,
  bs: number,
  n: number,
) => void;

// Rows index typed arrays whose element type (number or bigint) depends on the dtype; these views tell
// the compiler which one a row was picked for.
type Nums = Float64Array;
type Bigs = BigInt64Array;

/**
 * Broadcasts `a` and `b` (with `bDims` standing in for b's dims, for legacy axis broadcasting) and runs
 * `row` over the output. The workhorse of every binary op.
 */
export function runBinary(
  node: Node,
  a: Tensor,
  b: Tensor,
  outType: DType,
  row: BinaryRow,
  bDims: readonly number[] = b.dims,
  allocFloat32?: (length: number) => Float32Array,
): Tensor {
  const outDims = broadcastShapes(node, [a.dims, bDims]);
  const plan = planBroadcast(outDims, [a.dims, bDims]);
  const av = computeView(a);
  const bv = computeView(b);
  // Every output row is written, so a float32 output may be a reused buffer.
  const out =
    outType === "float32" && allocFloat32 ? allocFloat32(plan.size) : allocateCompute(outType, plan.size);
  const as = plan.innerStep[0]!;
  const bs = plan.innerStep[1]!;
  const inner = plan.inner;
  forEachRow(plan, (o, starts) => row(out, o, av, starts[0]!, as, bv, starts[1]!, bs, inner));
  return finishCompute(outType, out, outDims);
}

// ---- tight rows for the float32 hot path (also used for float64 and small ints) ---------------------
// One function literal per op so each loop body stays monomorphic and inlined; branches pick the
// same-shape, right-broadcast and left-broadcast forms outside the loop.

export const addRow: BinaryRow = (out_, o, a_, ai, as, b_, bi, bs, n) => {
  const out = out_ as Nums;
  const a = a_ as Nums;
  const b = b_ as Nums;
  if (as && bs) for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! + b[bi + j]!;
  else if (as) {
    const y = b[bi]!;
    for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! + y;
  } else if (bs) {
    const x = a[ai]!;
    for (let j = 0; j < n; j++) out[o + j] = x + b[bi + j]!;
  } else out.fill(a[ai]! + b[bi]!, o, o + n);
};

const subRow: BinaryRow = (out_, o, a_, ai, as, b_, bi, bs, n) => {
  const out = out_ as Nums;
  const a = a_ as Nums;
  const b = b_ as Nums;
  if (as && bs) for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! - b[bi + j]!;
  else if (as) {
    const y = b[bi]!;
    for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! - y;
  } else if (bs) {
    const x = a[ai]!;
    for (let j = 0; j < n; j++) out[o + j] = x - b[bi + j]!;
  } else out.fill(a[ai]! - b[bi]!, o, o + n);
};

const mulRow: BinaryRow = (out_, o, a_, ai, as, b_, bi, bs, n) => {
  const out = out_ as Nums;
  const a = a_ as Nums;
  const b = b_ as Nums;
  if (as && bs) for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! * b[bi + j]!;
  else if (as) {
    const y = b[bi]!;
    for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! * y;
  } else if (bs) {
    const x = a[ai]!;
    for (let j = 0; j < n; j++) out[o + j] = x * b[bi + j]!;
  } else out.fill(a[ai]! * b[bi]!, o, o + n);
};

const divRow: BinaryRow = (out_, o, a_, ai, as, b_, bi, bs, n) => {
  const out = out_ as Nums;
  const a = a_ as Nums;
  const b = b_ as Nums;
  if (as && bs) for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! / b[bi + j]!;
  else if (as) {
    const y = b[bi]!;
    for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! / y;
  } else if (bs) {
    const x = a[ai]!;
    for (let j = 0; j < n; j++) out[o + j] = x / b[bi + j]!;
  } else out.fill(a[ai]! / b[bi]!, o, o + n);
};

// ---- monomorphic float32 kernels ---------------------------------------------------------------------
// The rows above serve every dtype, so V8's element access there goes polymorphic. These functions only
// ever see Float32Array, which keeps their loads and stores monomorphic; float32 math is done in float64
// and rounded on store exactly as the generic rows do, so results are bit-identical.

type F32 = Float32Array;

/** Float32 kernels of one arithmetic op: same shape, scalar on either side, last-axis row on either side. */
interface Float32Kernels {
  same: (out: F32, a: F32, b: F32) => void;
  scalarB: (out: F32, a: F32, y: number) => void;
  scalarA: (out: F32, x: number, b: F32) => void;
  /** b is a row of `w` elements repeated along a. */
  rowB: (out: F32, a: F32, b: F32, w: number) => void;
  /** a is a row of `w` elements repeated along b. */
  rowA: (out: F32, a: F32, b: F32, w: number) => void;
}

const addF32: Float32Kernels = {
  same(out, a, b) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! + b[i]!;
  },
  scalarB(out, a, y) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! + y;
  },
  scalarA(out, x, b) {
    for (let i = 0; i < out.length; i++) out[i] = x + b[i]!;
  },
  rowB(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[r + j]! + b[j]!;
  },
  rowA(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[j]! + b[r + j]!;
  },
};

const subF32: Float32Kernels = {
  same(out, a, b) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! - b[i]!;
  },
  scalarB(out, a, y) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! - y;
  },
  scalarA(out, x, b) {
    for (let i = 0; i < out.length; i++) out[i] = x - b[i]!;
  },
  rowB(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[r + j]! - b[j]!;
  },
  rowA(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[j]! - b[r + j]!;
  },
};

const mulF32: Float32Kernels = {
  same(out, a, b) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! * b[i]!;
  },
  scalarB(out, a, y) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! * y;
  },
  scalarA(out, x, b) {
    for (let i = 0; i < out.length; i++) out[i] = x * b[i]!;
  },
  rowB(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[r + j]! * b[j]!;
  },
  rowA(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[j]! * b[r + j]!;
  },
};

const divF32: Float32Kernels = {
  same(out, a, b) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! / b[i]!;
  },
  scalarB(out, a, y) {
    for (let i = 0; i < out.length; i++) out[i] = a[i]! / y;
  },
  scalarA(out, x, b) {
    for (let i = 0; i < out.length; i++) out[i] = x / b[i]!;
  },
  rowB(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[r + j]! / b[j]!;
  },
  rowA(out, a, b, w) {
    for (let r = 0; r < out.length; r += w) for (let j = 0; j < w; j++) out[r + j] = a[j]! / b[r + j]!;
  },
};

/** True when `dims` is all 1s except possibly its last entry, which then must equal `width`. */
function isLastAxisRow(dims: readonly number[], rank: number, width: number): boolean {
  if (dims.length > rank) return false;
  for (let i = 0; i < dims.length - 1; i++) if (dims[i] !== 1) return false;
  return dims.length > 0 && dims[dims.length - 1] === width;
}

function sameDims(x: readonly number[], y: readonly number[]): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * The float32 fast path: same shape, a scalar (size 1, rank not above the other's) on either side, or a
 * last-axis row on either side. Undefined for every other layout, which stays on runBinary.
 */
function runFloat32(
  k: Float32Kernels,
  a: Tensor,
  b: Tensor,
  bDims: readonly number[],
  alloc: (length: number) => Float32Array,
): Tensor | undefined {
  const x = a.data as F32;
  const y = b.data as F32;
  const ad = a.dims;
  if (sameDims(ad, bDims)) {
    const out = alloc(x.length);
    k.same(out, x, y);
    return new Tensor("float32", out, ad);
  }
  if (y.length === 1 && bDims.length <= ad.length) {
    const out = alloc(x.length);
    k.scalarB(out, x, y[0]!);
    return new Tensor("float32", out, ad);
  }
  if (x.length === 1 && ad.length <= bDims.length) {
    const out = alloc(y.length);
    k.scalarA(out, x[0]!, y);
    return new Tensor("float32", out, bDims);
  }
  const aw = ad[ad.length - 1];
  if (aw !== undefined && aw > 0 && isLastAxisRow(bDims, ad.length, aw)) {
    const out = alloc(x.length);
    k.rowB(out, x, y, aw);
    return new Tensor("float32", out, ad);
  }
  const bw = bDims[bDims.length - 1];
  if (bw !== undefined && bw > 0 && isLastAxisRow(ad, bDims.length, bw)) {
    const out = alloc(y.length);
    k.rowA(out, x, y, bw);
    return new Tensor("float32", out, bDims);
  }
  return undefined;
}

// ---- generic rows from scalar functions (everything off the hot path) --------------------------------

function numberRow(fn: (x: number, y: number) => number): BinaryRow {
  return (out_, o, a_, ai, as, b_, bi, bs, n) => {
    const out = out_ as Nums;
    const a = a_ as Nums;
    const b = b_ as Nums;
    for (let j = 0; j < n; j++) out[o + j] = fn(a[ai + j * as]!, b[bi + j * bs]!);
  };
}

function bigintRow(fn: (x: bigint, y: bigint) => bigint): BinaryRow {
  return (out_, o, a_, ai, as, b_, bi, bs, n) => {
    const out = out_ as Bigs;
    const a = a_ as Bigs;
    const b = b_ as Bigs;
    for (let j = 0; j < n; j++) out[o + j] = fn(a[ai + j * as]!, b[bi + j * bs]!);
  };
}

/** Comparison into a bool (Uint8Array) output; JS relational operators work on number and bigint alike. */
function compareRow(fn: (x: number, y: number) => boolean): BinaryRow {
  return (out_, o, a_, ai, as, b_, bi, bs, n) => {
    const out = out_ as Uint8Array;
    const a = a_ as Nums;
    const b = b_ as Nums;
    for (let j = 0; j < n; j++) out[o + j] = fn(a[ai + j * as]!, b[bi + j * bs]!) ? 1 : 0;
  };
}

// ---- integer semantics -------------------------------------------------------------------------------

/** Integer division and remainder by zero are undefined in ONNX; reject them instead of inventing a value. */
function rejectZeroDivisor(node: Node, divisor: Tensor): void {
  const d = divisor.data;
  const hasZero = divisor.type === "int64" ? (d as Bigs).includes(0n) : (d as Uint8Array).includes(0);
  if (hasZero) throw new OpError(node, "integer division by zero");
}

/** Python-style remainder: the sign follows the divisor (ONNX Mod with fmod=0). */
function floorMod(x: number, y: number): number {
  const r = x % y;
  return r !== 0 && r < 0 !== y < 0 ? r + y : r;
}

function floorModBig(x: bigint, y: bigint): bigint {
  const r = x % y;
  return r !== 0n && r < 0n !== y < 0n ? r + y : r;
}

/** C pow: pow(1, y) and pow(-1, ±inf) are 1 where JS Math.pow gives NaN. */
function cPow(x: number, y: number): number {
  if (x === 1 || (x === -1 && (y === Number.POSITIVE_INFINITY || y === Number.NEGATIVE_INFINITY))) return 1;
  return x ** y;
}

const INT64_MIN = -(2n ** 63n);

/** int64 base: exact wrap-around power for non-negative integral exponents, truncated float pow otherwise. */
function powInt64(base: bigint, exponent: number): bigint {
  if (Number.isInteger(exponent) && exponent >= 0) {
    let result = 1n;
    let b = base;
    let e = BigInt(exponent);
    while (e > 0n) {
      if (e & 1n) result = BigInt.asIntN(64, result * b);
      b = BigInt.asIntN(64, b * b);
      e >>= 1n;
    }
    return result;
  }
  const r = Math.trunc(cPow(Number(base), exponent));
  return Number.isFinite(r) ? BigInt.asIntN(64, BigInt(r)) : INT64_MIN;
}

// ---- op definitions ----------------------------------------------------------------------------------

interface BinaryKernels {
  /** float32/float64 and float16 (staged in float32). */
  float?: BinaryRow;
  /** int32 / int8 / uint8 (stores into the typed array wrap like C). */
  int32?: BinaryRow;
  small?: BinaryRow;
  int64?: BinaryRow;
  bool?: BinaryRow;
}

function pickRow(node: Node, dtype: DType, k: BinaryKernels): BinaryRow {
  const row = isFloatType(dtype)
    ? k.float
    : dtype === "int64"
      ? k.int64
      : dtype === "int32"
        ? k.int32
        : dtype === "bool"
          ? k.bool
          : k.small;
  if (!row) throw new OpError(node, `dtype ${dtype} is not supported`);
  return row;
}

/**
 * Before opset 7 arithmetic and logic ops broadcast only with `broadcast=1`, aligning B at `axis` of A
 * (suffix-aligned when absent); returns the dims B is read with.
 */
function legacyBDims(ctx: OpContext, a: Tensor, b: Tensor): readonly number[] {
  if (ctx.opset >= 7) return b.dims;
  const node = ctx.node;
  if (attrInt(node, "broadcast", 0) !== 1) {
    if (a.dims.join() !== b.dims.join()) {
      throw new OpError(node, `without broadcast=1 shapes must match, got [${a.dims}] and [${b.dims}]`);
    }
    return b.dims;
  }
  if (!hasAttr(node, "axis")) return b.dims;
  const rank = a.dims.length;
  let axis = attrInt(node, "axis");
  if (axis < 0) axis += rank;
  if (axis < 0 || axis + b.dims.length > rank) {
    throw new OpError(node, `axis ${attrInt(node, "axis")} does not fit B [${b.dims}] into A [${a.dims}]`);
  }
  return [...Array(axis).fill(1), ...b.dims, ...Array(rank - axis - b.dims.length).fill(1)];
}

function binaryOp(
  opType: string,
  allowed: readonly DType[],
  kernels: BinaryKernels,
  opts: { outType?: DType; integerDivision?: boolean; float32?: Float32Kernels } = {},
): OpDef {
  return {
    opType,
    inferTypes: (ctx) => inferBroadcast(ctx, [0, 1], allowed, opts.outType),
    run(ctx, inputs) {
      const node = ctx.node;
      const a = requireInput(node, inputs, 0);
      const b = requireInput(node, inputs, 1);
      requireSameDType(node, [a.type, b.type]);
      requireDType(node, 0, a.type, allowed);
      if (opts.integerDivision && !isFloatType(a.type)) rejectZeroDivisor(node, b);
      const row = pickRow(node, a.type, kernels);
      const bDims = legacyBDims(ctx, a, b);
      if (opts.float32 && a.type === "float32") {
        const fast = runFloat32(opts.float32, a, b, bDims, computeOf(ctx).allocFloat32);
        if (fast) return [fast];
      }
      return [runBinary(node, a, b, opts.outType ?? a.type, row, bDims, computeOf(ctx).allocFloat32)];
    },
  };
}

const Add = binaryOp(
  "Add",
  NUMERIC_TYPES,
  {
    float: addRow,
    int32: addRow,
    small: addRow,
    int64: bigintRow((x, y) => x + y),
  },
  { float32: addF32 },
);

const Sub = binaryOp(
  "Sub",
  NUMERIC_TYPES,
  {
    float: subRow,
    int32: subRow,
    small: subRow,
    int64: bigintRow((x, y) => x - y),
  },
  { float32: subF32 },
);

const Mul = binaryOp(
  "Mul",
  NUMERIC_TYPES,
  {
    float: mulRow,
    // A float64 product of two int32 can exceed 2^53 and lose the low bits that wrapping keeps.
    int32: numberRow(Math.imul),
    small: mulRow,
    int64: bigintRow((x, y) => x * y),
  },
  { float32: mulF32 },
);

const Div = binaryOp(
  "Div",
  NUMERIC_TYPES,
  {
    float: divRow,
    // |x|,|y| < 2^31: the float64 quotient is never rounded across an integer, so trunc is exact.
    int32: numberRow((x, y) => Math.trunc(x / y)),
    small: numberRow((x, y) => Math.trunc(x / y)),
    int64: bigintRow((x, y) => x / y), // bigint division truncates toward zero, as C does
  },
  { integerDivision: true, float32: divF32 },
);

const Mod: OpDef = {
  opType: "Mod",
  inferTypes: (ctx) => inferBroadcast(ctx, [0, 1], NUMERIC_TYPES),
  run(ctx, inputs) {
    const node = ctx.node;
    const a = requireInput(node, inputs, 0);
    const b = requireInput(node, inputs, 1);
    requireSameDType(node, [a.type, b.type]);
    requireDType(node, 0, a.type, NUMERIC_TYPES);
    const fmod = attrInt(node, "fmod", 0);
    if (fmod !== 0 && fmod !== 1) throw new OpError(node, `fmod must be 0 or 1, got ${fmod}`);
    const float = isFloatType(a.type);
    if (float && fmod === 0) throw new OpError(node, "fmod must be 1 for floating-point inputs");
    if (!float) rejectZeroDivisor(node, b);
    // JS % is C fmod: truncated remainder, sign of the dividend.
    const row =
      a.type === "int64"
        ? bigintRow(fmod ? (x, y) => x % y : floorModBig)
        : numberRow(fmod ? (x, y) => x % y : floorMod);
    return [runBinary(node, a, b, a.type, row)];
  },
};

const POW_BASE_TYPES: readonly DType[] = [...FLOAT_TYPES, "int32", "int64"];

/** Float Pow with exponent 2 (LayerNorm variance) and 3 (tanh GELU) multiplied out, as onnxruntime does. */
const powFloatRow: BinaryRow = (out_, o, a_, ai, as, b_, bi, bs, n) => {
  const out = out_ as Nums;
  const a = a_ as Nums;
  const b = b_ as Nums;
  const y = b[bi]!;
  if (bs === 0 && as === 1 && y === 2) for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! * a[ai + j]!;
  else if (bs === 0 && as === 1 && y === 3)
    for (let j = 0; j < n; j++) out[o + j] = a[ai + j]! * a[ai + j]! * a[ai + j]!;
  else for (let j = 0; j < n; j++) out[o + j] = cPow(a[ai + j * as]!, b[bi + j * bs]!);
};

const Pow: OpDef = {
  opType: "Pow",
  inferTypes(ctx: TypeContext) {
    const [base, exponent] = ctx.inputs;
    if (!base) throw new OpError(ctx.node, "cannot infer the output dtype: the base has no known type");
    requireDType(ctx.node, 0, base.dtype, POW_BASE_TYPES);
    if (exponent) requireDType(ctx.node, 1, exponent.dtype, NUMERIC_TYPES);
    return [{ dtype: base.dtype, shape: broadcastShapesSymbolic(ctx.node, [base.shape, exponent?.shape]) }];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const a = requireInput(node, inputs, 0);
    const b = requireInput(node, inputs, 1);
    requireDType(node, 0, a.type, POW_BASE_TYPES);
    requireDType(node, 1, b.type, NUMERIC_TYPES);
    const bDims = legacyBDims(ctx, a, b);
    // Since opset 12 the exponent may have another numeric type than the base: every row reads it as
    // plain numbers (int64 converted up front, float16 decoded by runBinary).
    const exponent = b.type === "int64" ? numbersOfBigints(b) : b;
    let row: BinaryRow;
    if (a.type === "int64") {
      row = (out_, o, a_, ai, as, e_, ei, es, n) => {
        const out = out_ as Bigs;
        const x = a_ as Bigs;
        const e = e_ as Nums;
        for (let j = 0; j < n; j++) out[o + j] = powInt64(x[ai + j * as]!, e[ei + j * es]!);
      };
    } else if (a.type === "int32") {
      row = numberRow((x, y) => Math.trunc(cPow(x, y)));
    } else {
      row = powFloatRow;
    }
    return [runBinary(node, a, exponent, a.type, row, bDims)];
  },
};

/** An int64 exponent as a float64 tensor of the same shape, so every Pow row reads plain numbers. */
function numbersOfBigints(t: Tensor): Tensor {
  const src = t.data as Bigs;
  const dst = new Float64Array(src.length);
  for (let i = 0; i < src.length; i++) dst[i] = Number(src[i]!);
  return finishCompute("float64", dst, t.dims);
}

const bigMin = (x: bigint, y: bigint) => (x < y ? x : y);
const bigMax = (x: bigint, y: bigint) => (x > y ? x : y);

/**
 * Variadic ops (Min, Max, Sum, Mean): fold the inputs pairwise with broadcasting. For floats Min/Max
 * propagate NaN (numpy minimum/maximum semantics, as the ONNX reference implementation does).
 */
function variadicOp(
  opType: string,
  allowed: readonly DType[],
  kernels: BinaryKernels,
  finish: (node: Node, acc: Tensor, count: number) => Tensor = (_node, acc) => acc,
): OpDef {
  return {
    opType,
    inferTypes: (ctx) =>
      inferBroadcast(
        ctx,
        ctx.inputs.map((_, i) => i),
        allowed,
      ),
    run(ctx, inputs) {
      const node = ctx.node;
      if (inputs.length === 0) throw new OpError(node, "needs at least one input");
      const ts = inputs.map((_, i) => requireInput(node, inputs, i));
      requireSameDType(
        node,
        ts.map((t) => t.type),
      );
      requireDType(node, 0, ts[0]!.type, allowed);
      const row = pickRow(node, ts[0]!.type, kernels);
      const first = ts[0]!;
      // A single input is copied so the result never aliases an input's data.
      let acc =
        ts.length === 1 ? new Tensor(first.type, first.data.slice() as TypedArray, first.dims) : first;
      for (let i = 1; i < ts.length; i++) acc = runBinary(node, acc, ts[i]!, acc.type, row);
      return [finish(node, acc, ts.length)];
    },
  };
}

const minMaxKernels = (num: (x: number, y: number) => number, big: typeof bigMin): BinaryKernels => ({
  float: numberRow(num),
  int32: numberRow(num),
  small: numberRow(num),
  int64: bigintRow(big),
});

const Min = variadicOp("Min", NUMERIC_TYPES, minMaxKernels(Math.min, bigMin));
const Max = variadicOp("Max", NUMERIC_TYPES, minMaxKernels(Math.max, bigMax));
const Sum = variadicOp("Sum", NUMERIC_TYPES, {
  float: addRow,
  int32: addRow,
  small: addRow,
  int64: bigintRow((x, y) => x + y),
});
/** Mean = Sum / count, float types only (spec); the division happens in the compute precision. */
const Mean = variadicOp("Mean", FLOAT_TYPES, { float: addRow }, (node, acc, count) => {
  const divisor = new Tensor(acc.type, [count], []);
  return runBinary(node, acc, divisor, acc.type, divRow);
});

function comparisonOp(
  opType: string,
  allowed: readonly DType[],
  fn: (x: number, y: number) => boolean,
): OpDef {
  const row = compareRow(fn);
  return binaryOp(
    opType,
    allowed,
    { float: row, int32: row, small: row, int64: row, bool: row },
    { outType: "bool" },
  );
}

const Equal = comparisonOp("Equal", ALL_TYPES, (x, y) => x === y);
const Less = comparisonOp("Less", NUMERIC_TYPES, (x, y) => x < y);
const Greater = comparisonOp("Greater", NUMERIC_TYPES, (x, y) => x > y);
const LessOrEqual = comparisonOp("LessOrEqual", NUMERIC_TYPES, (x, y) => x <= y);
const GreaterOrEqual = comparisonOp("GreaterOrEqual", NUMERIC_TYPES, (x, y) => x >= y);

const BOOL: readonly DType[] = ["bool"];
const And = binaryOp("And", BOOL, { bool: numberRow((x, y) => x & y) }, { outType: "bool" });
const Or = binaryOp("Or", BOOL, { bool: numberRow((x, y) => x | y) }, { outType: "bool" });
const Xor = binaryOp("Xor", BOOL, { bool: numberRow((x, y) => x ^ y) }, { outType: "bool" });

registerOps([
  Add,
  Sub,
  Mul,
  Div,
  Mod,
  Pow,
  Min,
  Max,
  Sum,
  Mean,
  Equal,
  Less,
  Greater,
  LessOrEqual,
  GreaterOrEqual,
  And,
  Or,
  Xor,
]);
