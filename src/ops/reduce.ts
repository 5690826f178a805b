import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { normalizeAxis } from "../ir/shape.js";
import { sizeOf, type Tensor } from "../ir/tensor.js";
import { tensorFromFloat64 } from "./float-data.js";
import { attrInt, attrInts, hasAttr, type OpDef, registerOps, type TypeContext } from "./registry.js";

/** How one reduction folds values: start value, step, and a final touch given the element count. */
interface Reducer {
  opType: string;
  /** First opset in which `axes` is an input rather than an attribute. */
  axesInputSince: number;
  init: number;
  step(acc: number, v: number): number;
  finish(acc: number, count: number): number;
}

const REDUCERS: readonly Reducer[] = [
  {
    opType: "ReduceSum",
    axesInputSince: 13,
    init: 0,
    step: (acc, v) => acc + v,
    finish: (acc) => acc,
  },
  {
    opType: "ReduceMean",
    axesInputSince: 18,
    init: 0,
    step: (acc, v) => acc + v,
    finish: (acc, n) => acc / n,
  },
  {
    opType: "ReduceMax",
    axesInputSince: 18,
    init: Number.NEGATIVE_INFINITY,
    // NaN propagates, as in numpy.max and onnxruntime.
    step: (acc, v) => (v > acc || Number.isNaN(v) ? v : acc),
    finish: (acc) => acc,
  },
  {
    opType: "ReduceMin",
    axesInputSince: 18,
    init: Number.POSITIVE_INFINITY,
    step: (acc, v) => (v < acc || Number.isNaN(v) ? v : acc),
    finish: (acc) => acc,
  },
  { opType: "ReduceProd", axesInputSince: 18, init: 1, step: (acc, v) => acc * v, finish: (acc) => acc },
  {
    opType: "ReduceL1",
    axesInputSince: 18,
    init: 0,
    step: (acc, v) => acc + Math.abs(v),
    finish: (acc) => acc,
  },
  { opType: "ReduceL2", axesInputSince: 18, init: 0, step: (acc, v) => acc + v * v, finish: Math.sqrt },
  {
    opType: "ReduceSumSquare",
    axesInputSince: 18,
    init: 0,
    step: (acc, v) => acc + v * v,
    finish: (acc) => acc,
  },
  { opType: "ReduceLogSum", axesInputSince: 18, init: 0, step: (acc, v) => acc + v, finish: Math.log },
  {
    opType: "ReduceLogSumExp",
    axesInputSince: 18,
    init: Number.NEGATIVE_INFINITY,
    // log(e^acc + e^v) around the larger of the two, so large values do not overflow.
    step: (acc, v) => {
      const hi = Math.max(acc, v);
      if (hi === Number.NEGATIVE_INFINITY || Number.isNaN(hi)) return hi;
      return hi + Math.log1p(Math.exp(-Math.abs(acc - v)));
    },
    finish: (acc) => acc,
  },
];

/**
 * The axes to reduce, or "all" / "none" (identity when axes is empty and noop_with_empty_axes=1).
 * `axes` is an attribute before `axesInputSince` and an optional int64 input from then on.
 */
function resolveAxes(
  node: Node,
  r: Reducer,
  opset: number,
  rank: number,
  axesInput: Tensor | undefined,
): number[] | "none" {
  let axes: number[] | undefined;
  if (opset < r.axesInputSince) {
    axes = hasAttr(node, "axes") ? attrInts(node, "axes") : undefined;
  } else if (axesInput) {
    if (axesInput.type !== "int64") throw new OpError(node, `axes must be int64, got ${axesInput.type}`);
    axes = axesInput.toNumbers();
  }
  if (!axes || axes.length === 0) {
    const noop = opset >= r.axesInputSince && attrInt(node, "noop_with_empty_axes", 0) !== 0;
    return noop ? "none" : Array.from({ length: rank }, (_, i) => i);
  }
  const out = axes.map((a) => {
    try {
      return normalizeAxis(a, rank);
    } catch (e) {
      throw new OpError(node, (e as Error).message);
    }
  });
  if (new Set(out).size !== out.length) throw new OpError(node, `axes [${axes}] repeat an axis`);
  return out.sort((a, b) => a - b);
}

function reducedShape<T extends Dim>(
  dims: readonly T[],
  axes: readonly number[],
  keepdims: boolean,
): (T | 1)[] {
  const out: (T | 1)[] = [];
  dims.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

/** Reduces x over `axes` with the odometer view: each input element maps to one output slot. */
function reduce(r: Reducer, x: Float64Array, dims: readonly number[], axes: readonly number[]): Float64Array {
  const keptDims = reducedShape(dims, axes, true) as number[];
  const outSize = sizeOf(keptDims);
  const acc = new Float64Array(outSize).fill(r.init);
  const rank = dims.length;
  // outStride[d]: how far the output slot moves when input axis d steps (0 on reduced axes).
  const outStride = new Array<number>(rank).fill(0);
  for (let d = rank - 1, s = 1; d >= 0; d--) {
    if (!axes.includes(d)) {
      outStride[d] = s;
      s *= dims[d]!;
    }
  }
  const idx = new Array<number>(rank).fill(0);
  let o = 0;
  for (let i = 0; i < x.length; i++) {
    acc[o] = r.step(acc[o]!, x[i]!);
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < dims[d]!) {
        o += outStride[d]!;
        break;
      }
      o -= outStride[d]! * (dims[d]! - 1);
      idx[d] = 0;
    }
  }
  const count = sizeOf(dims) / Math.max(outSize, 1);
  for (let j = 0; j < outSize; j++) acc[j] = r.finish(acc[j]!, count);
  return acc;
}

function inferReduce(r: Reducer, ctx: TypeContext): ValueType[] {
  const x = ctx.inputs[0];
  if (!x) return [{ dtype: "float32" }];
  if (!x.shape) return [{ dtype: x.dtype }];
  const keepdims = attrInt(ctx.node, "keepdims", 1) !== 0;
  const axesKnown = ctx.opset < r.axesInputSince || !ctx.node.inputs[1] || ctx.constant(1) !== undefined;
  if (!axesKnown) {
    return [keepdims ? { dtype: x.dtype, shape: x.shape.map(() => null) } : { dtype: x.dtype }];
  }
  const axes = resolveAxes(ctx.node, r, ctx.opset, x.shape.length, ctx.constant(1));
  if (axes === "none") return [{ ...x }];
  return [{ dtype: x.dtype, shape: reducedShape(x.shape, axes, keepdims) }];
}

function reduceOp(r: Reducer): OpDef {
  return {
    opType: r.opType,
    inferTypes: (ctx) => inferReduce(r, ctx),
    run(ctx, [x, axesInput]) {
      const node = ctx.node;
      if (!x) throw new OpError(node, `${r.opType} needs an input`);
      if (x.type === "bool" && r.opType !== "ReduceMax" && r.opType !== "ReduceMin")
        throw new OpError(node, "bool input is not supported");
      const axes = resolveAxes(node, r, ctx.opset, x.rank, axesInput);
      if (axes === "none") return [x];
      const keepdims = attrInt(node, "keepdims", 1) !== 0;
      const out = reduce(r, x.toFloat64(), x.dims, axes);
      return [tensorFromFloat64(x.type, out, reducedShape(x.dims, axes, keepdims) as number[])];
    },
  };
}

/**
 * A reduction node's axes and output dims for an input of `dims` (axes from the attribute or the host axes
 * input): what a device backend needs, without the data. "none": the op is the identity.
 */
export function reduceGeometry(
  node: Node,
  opset: number,
  dims: readonly number[],
  axesInput: Tensor | undefined,
): { axes: number[]; outDims: number[] } | "none" {
  const r = REDUCERS.find((x) => x.opType === node.opType);
  if (!r) throw new OpError(node, `${node.opType} is not a reduction`);
  const axes = resolveAxes(node, r, opset, dims.length, axesInput);
  if (axes === "none") return "none";
  const keepdims = attrInt(node, "keepdims", 1) !== 0;
  return { axes, outDims: reducedShape(dims, axes, keepdims) as number[] };
}

export const reduceOps: readonly OpDef[] = REDUCERS.map(reduceOp);
registerOps(reduceOps);
