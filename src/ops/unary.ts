/**
 * Unary elementwise ops: math functions, activations (Relu, Sigmoid, Gelu-20), sign/rounding helpers,
 * and the predicates IsNaN / IsInf / Not.
 */
import { OpError } from "../errors.js";
import { type DType, isFloat, type TypedArray } from "../ir/dtype.js";
import type { Node } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import {
  allocateCompute,
  computeView,
  erf,
  erfFloat32,
  erfFloat32Array,
  FLOAT_TYPES,
  finishCompute,
  geluErf,
  geluErfFloat32,
  geluErfFloat32Array,
  geluTanh,
  geluTanhFloat32Array,
  inferSameShape,
  NUMERIC_TYPES,
  requireDType,
  requireInput,
  roundHalfEven,
  SIGNED_NUMERIC_TYPES,
  sigmoid,
} from "./elementwise-util.js";
import { attrInt, attrString, type OpDef, registerOps } from "./registry.js";

/** A float kernel over compute views: float32 (also staged float16) or float64 in, same length out. */
type FloatLoop = (x: Float64Array, y: Float64Array, node: Node) => void;

export interface UnarySpec {
  opType: string;
  types: readonly DType[];
  /** Output dtype when it is not the input's (predicates → bool). */
  outType?: DType;
  /**
   * Float path as an explicit loop: each op gets its own loop body, so the float32 hot path has no
   * per-element call through a shared function.
   */
  float?: FloatLoop;
  /**
   * Optional float32-only loop (its arrays are only ever Float32Array, so V8 keeps its element access
   * monomorphic); used instead of `float` for float32 tensors and must compute the same values.
   */
  float32?: (x: Float32Array, y: Float32Array, node: Node) => void;
  /** int32 / int8 / uint8 / bool values; the typed-array store wraps like C. */
  int?: (x: number) => number;
  int64?: (x: bigint) => bigint;
}

function runUnary(spec: UnarySpec, node: Node, x: Tensor, alloc: (length: number) => Float32Array): Tensor {
  requireDType(node, 0, x.type, spec.types);
  const outType = spec.outType ?? x.type;
  const n = x.size;
  if (x.type === "float32" && outType === "float32" && (spec.float32 || spec.float)) {
    // Every element is written: the backend's pooled buffer (a fresh array per run cost page faults and GC).
    const out = alloc(n);
    if (spec.float32) spec.float32(x.data as Float32Array, out, node);
    else spec.float!(x.data as unknown as Float64Array, out as unknown as Float64Array, node);
    return new Tensor("float32", out, x.dims);
  }
  if (isFloat(x.type)) {
    if (!spec.float) throw new OpError(node, `dtype ${x.type} is not supported`);
    const out = allocateCompute(outType, n);
    // Float views are read/written as numbers; the outputs are float32/float64/bool arrays.
    spec.float(computeView(x) as Float64Array, out as Float64Array, node);
    return finishCompute(outType, out, x.dims);
  }
  if (x.type === "int64") {
    if (!spec.int64) throw new OpError(node, "dtype int64 is not supported");
    const src = x.data as BigInt64Array;
    const out = new BigInt64Array(n);
    for (let i = 0; i < n; i++) out[i] = spec.int64(src[i]!);
    return new Tensor("int64", out, x.dims);
  }
  if (!spec.int) throw new OpError(node, `dtype ${x.type} is not supported`);
  const src = x.data as Uint8Array;
  const out = allocateCompute(outType, n) as Uint8Array;
  for (let i = 0; i < n; i++) out[i] = spec.int(src[i]!);
  return new Tensor(outType, out as TypedArray, x.dims);
}

/** Compute views are typed Float64Array but are Float32Array for float32/float16 results. */
function isFloat64View(y: Float64Array): boolean {
  return (y as ArrayBufferView) instanceof Float64Array;
}

export function unaryOp(spec: UnarySpec): OpDef {
  return {
    opType: spec.opType,
    inferTypes: (ctx) => inferSameShape(ctx, spec.types, spec.outType),
    run: (ctx, inputs) => [
      runUnary(spec, ctx.node, requireInput(ctx.node, inputs, 0), computeOf(ctx).allocFloat32),
    ],
  };
}

const abs64 = (v: bigint) => (v < 0n ? -v : v);
const sign64 = (v: bigint) => (v > 0n ? 1n : v < 0n ? -1n : 0n);

const specs: UnarySpec[] = [
  {
    opType: "Sqrt",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.sqrt(x[i]!);
    },
  },
  {
    opType: "Exp",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.exp(x[i]!);
    },
  },
  {
    opType: "Log",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.log(x[i]!);
    },
  },
  {
    opType: "Tanh",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]!);
    },
  },
  {
    opType: "Sigmoid",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = sigmoid(x[i]!);
    },
  },
  {
    opType: "Cos",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.cos(x[i]!);
    },
  },
  {
    opType: "Sin",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.sin(x[i]!);
    },
  },
  {
    opType: "Reciprocal",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = 1 / x[i]!;
    },
  },
  {
    opType: "Floor",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.floor(x[i]!);
    },
  },
  {
    opType: "Ceil",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.ceil(x[i]!);
    },
  },
  {
    opType: "Round",
    types: FLOAT_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = roundHalfEven(x[i]!);
    },
  },
  {
    // Erf accepts integer tensors since opset 13; the result is truncated back to the integer type.
    opType: "Erf",
    types: NUMERIC_TYPES,
    float: (x, y) => {
      // float32/float16 results need only float32 accuracy; float64 results get the exact series.
      if (isFloat64View(y)) for (let i = 0; i < x.length; i++) y[i] = erf(x[i]!);
      else for (let i = 0; i < x.length; i++) y[i] = erfFloat32(x[i]!);
    },
    float32: erfFloat32Array,
    int: (v) => Math.trunc(erf(v)),
    int64: (v) => BigInt(Math.trunc(erf(Number(v)))),
  },
  {
    // Integer inputs since opset 14.
    opType: "Relu",
    types: SIGNED_NUMERIC_TYPES,
    float: (x, y) => {
      // Math.max passes NaN through instead of turning it into 0.
      for (let i = 0; i < x.length; i++) y[i] = Math.max(x[i]!, 0);
    },
    int: (v) => Math.max(v, 0),
    int64: (v) => (v < 0n ? 0n : v),
  },
  {
    opType: "Neg",
    types: SIGNED_NUMERIC_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = -x[i]!;
    },
    int: (v) => -v,
    int64: (v) => -v,
  },
  {
    opType: "Abs",
    types: NUMERIC_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.abs(x[i]!);
    },
    int: Math.abs,
    int64: abs64,
  },
  {
    opType: "Sign",
    types: NUMERIC_TYPES,
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Math.sign(x[i]!);
    },
    int: Math.sign,
    int64: sign64,
  },
  {
    opType: "Gelu",
    types: FLOAT_TYPES,
    float: (x, y, node) => {
      const approximate = attrString(node, "approximate", "none");
      if (approximate === "none" && isFloat64View(y))
        for (let i = 0; i < x.length; i++) y[i] = geluErf(x[i]!);
      else if (approximate === "none") for (let i = 0; i < x.length; i++) y[i] = geluErfFloat32(x[i]!);
      else if (approximate === "tanh") for (let i = 0; i < x.length; i++) y[i] = geluTanh(x[i]!);
      else throw new OpError(node, `approximate must be "none" or "tanh", got "${approximate}"`);
    },
    float32: (x, y, node) => {
      const approximate = attrString(node, "approximate", "none");
      if (approximate === "none") geluErfFloat32Array(x, y);
      else if (approximate === "tanh") geluTanhFloat32Array(x, y);
      else throw new OpError(node, `approximate must be "none" or "tanh", got "${approximate}"`);
    },
  },
  {
    opType: "IsNaN",
    types: FLOAT_TYPES,
    outType: "bool",
    float: (x, y) => {
      for (let i = 0; i < x.length; i++) y[i] = Number.isNaN(x[i]!) ? 1 : 0;
    },
  },
  {
    opType: "IsInf",
    types: FLOAT_TYPES,
    outType: "bool",
    float: (x, y, node) => {
      const neg = attrInt(node, "detect_negative", 1) !== 0;
      const pos = attrInt(node, "detect_positive", 1) !== 0;
      for (let i = 0; i < x.length; i++) {
        const v = x[i]!;
        y[i] = (pos && v === Number.POSITIVE_INFINITY) || (neg && v === Number.NEGATIVE_INFINITY) ? 1 : 0;
      }
    },
  },
  { opType: "Not", types: ["bool"], int: (v) => (v ? 0 : 1) },
];

registerOps(specs.map(unaryOp));
