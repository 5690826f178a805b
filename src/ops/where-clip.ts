/** Where (three-way broadcast select) and Clip (opset 6 attributes, opset 11+ optional inputs). */
import { OpError } from "../errors.js";
import { allocate, type DType } from "../ir/dtype.js";
import type { Node } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import {
  ALL_TYPES,
  allocateCompute,
  broadcastShapes,
  broadcastShapesSymbolic,
  computeView,
  FLOAT_TYPES,
  finishCompute,
  forEachRow,
  inferSameShape,
  NUMERIC_TYPES,
  planBroadcast,
  requireDType,
  requireInput,
  requireSameDType,
} from "./elementwise-util.js";
import { attrFloat, type OpDef, registerOps, type TypeContext } from "./registry.js";

/** Element reads and writes that work for number and bigint arrays alike (Where only moves values). */
type Values = { [i: number]: number | bigint };

const Where: OpDef = {
  opType: "Where",
  inferTypes(ctx) {
    const [cond, x, y] = ctx.inputs;
    if (cond) requireDType(ctx.node, 0, cond.dtype, ["bool"]);
    const dtype = requireSameDType(ctx.node, [undefined, x?.dtype, y?.dtype]);
    if (!dtype) throw new OpError(ctx.node, "cannot infer the output dtype: X and Y have no known type");
    return [{ dtype, shape: broadcastShapesSymbolic(ctx.node, [cond?.shape, x?.shape, y?.shape]) }];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const cond = requireInput(node, inputs, 0);
    const x = requireInput(node, inputs, 1);
    const y = requireInput(node, inputs, 2);
    requireDType(node, 0, cond.type, ["bool"]);
    requireSameDType(node, [undefined, x.type, y.type]);
    requireDType(node, 1, x.type, ALL_TYPES);
    const outDims = broadcastShapes(node, [cond.dims, x.dims, y.dims]);
    const plan = planBroadcast(outDims, [cond.dims, x.dims, y.dims]);
    // Raw data is selected as is: float16 bits need no decoding to be copied.
    const c = cond.data as Uint8Array;
    const xs = x.data as Values;
    const ys = y.data as Values;
    const data = allocate(x.type, plan.size);
    const out = data as Values;
    const [cStep, xStep, yStep] = plan.innerStep as [number, number, number];
    const inner = plan.inner;
    forEachRow(plan, (o, s) => {
      const c0 = s[0]!;
      const x0 = s[1]!;
      const y0 = s[2]!;
      for (let j = 0; j < inner; j++)
        out[o + j] = c[c0 + j * cStep] ? xs[x0 + j * xStep]! : ys[y0 + j * yStep]!;
    });
    return [new Tensor(x.type, data, outDims)];
  },
};

// ---- Clip --------------------------------------------------------------------------------------------

/** Clip-6's attribute defaults: the float32 range (spec), so ±Infinity inputs clip to ±FLT_MAX there. */
const FLT_MAX = 3.4028234663852886e38;

/** Integer and bool types join in opset 12; before that Clip is float-only. */
function clipTypes(opset: number): readonly DType[] {
  return opset >= 12 ? NUMERIC_TYPES : FLOAT_TYPES;
}

/** A min/max input: must be a single value (a scalar per spec; one-element tensors are accepted too). */
function boundValue(
  node: Node,
  t: Tensor | undefined,
  index: number,
  dtype: DType,
): number | bigint | undefined {
  if (!t) return undefined;
  if (t.type !== dtype)
    throw new OpError(node, `input ${index} has dtype ${t.type} but input 0 has ${dtype}`);
  if (t.size !== 1) throw new OpError(node, `input ${index} must be a scalar, got shape [${t.dims}]`);
  return t.type === "int64" ? (t.data as BigInt64Array)[0]! : t.getNumber(0);
}

/**
 * min(max(x, lo), hi) with the bounds applied in that order, which is what ONNX specifies when lo > hi
 * (everything becomes hi). Comparisons with NaN are false, so NaN passes through.
 */
function clip(x: Tensor, lo: number | bigint | undefined, hi: number | bigint | undefined): Tensor {
  const n = x.size;
  if (x.type === "int64") {
    const src = x.data as BigInt64Array;
    const out = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      let v = src[i]!;
      if (lo !== undefined && v < lo) v = lo as bigint;
      if (hi !== undefined && v > hi) v = hi as bigint;
      out[i] = v;
    }
    return new Tensor("int64", out, x.dims);
  }
  const low = (lo ?? Number.NEGATIVE_INFINITY) as number;
  const high = (hi ?? Number.POSITIVE_INFINITY) as number;
  const src = computeView(x) as Float64Array;
  const out = allocateCompute(x.type, n) as Float64Array;
  for (let i = 0; i < n; i++) {
    let v = src[i]!;
    if (v < low) v = low;
    if (v > high) v = high;
    out[i] = v;
  }
  return finishCompute(x.type, out, x.dims);
}

const Clip: OpDef = {
  opType: "Clip",
  inferTypes: (ctx: TypeContext) => inferSameShape(ctx, clipTypes(ctx.opset)),
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireDType(node, 0, x.type, clipTypes(ctx.opset));
    if (ctx.opset < 11) {
      return [clip(x, attrFloat(node, "min", -FLT_MAX), attrFloat(node, "max", FLT_MAX))];
    }
    return [clip(x, boundValue(node, inputs[1], 1, x.type), boundValue(node, inputs[2], 2, x.type))];
  },
};

registerOps([Where, Clip]);
