/**
 * Float activations and trigonometric functions beyond unary.ts: the parameterised activations of the ONNX
 * spec (Elu, Selu, Celu, LeakyRelu, HardSigmoid, HardSwish, ThresholdedRelu, Shrink, Softplus, Softsign,
 * Mish), PRelu, and the inverse/hyperbolic trigonometric functions. Each computes in float64 from the spec's
 * formula; attribute defaults are the spec's.
 */
import { OpError } from "../errors.js";
import type { Node } from "../ir/graph.js";
import { FLOAT_TYPES, inferSameShape, requireInput } from "./elementwise-util.js";
import { floatData, requireFloat, tensorFromFloat64 } from "./float-data.js";
import { attrFloat, type OpDef, registerOps } from "./registry.js";
import { type UnarySpec, unaryOp } from "./unary.js";

/** A float op y = f(x) whose formula may read the node's attributes once. */
function floatOp(opType: string, make: (node: Node) => (x: number) => number): UnarySpec {
  return {
    opType,
    types: FLOAT_TYPES,
    float: (x, y, node) => {
      const f = make(node);
      for (let i = 0; i < x.length; i++) y[i] = f(x[i]!);
    },
  };
}

const pure = (f: (x: number) => number) => () => f;

/** log(1 + e^x) without overflow for large x. */
const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

const specs: UnarySpec[] = [
  floatOp("Acos", pure(Math.acos)),
  floatOp("Asin", pure(Math.asin)),
  floatOp("Atan", pure(Math.atan)),
  floatOp("Tan", pure(Math.tan)),
  floatOp("Acosh", pure(Math.acosh)),
  floatOp("Asinh", pure(Math.asinh)),
  floatOp("Atanh", pure(Math.atanh)),
  floatOp("Cosh", pure(Math.cosh)),
  floatOp("Sinh", pure(Math.sinh)),
  floatOp("Softplus", pure(softplus)),
  floatOp(
    "Softsign",
    pure((x) => x / (1 + Math.abs(x))),
  ),
  floatOp(
    "Mish",
    pure((x) => x * Math.tanh(softplus(x))),
  ),
  floatOp("Elu", (node) => {
    const alpha = attrFloat(node, "alpha", 1);
    return (x) => (x < 0 ? alpha * (Math.exp(x) - 1) : x);
  }),
  floatOp("Selu", (node) => {
    const alpha = attrFloat(node, "alpha", 1.6732631921768188);
    const gamma = attrFloat(node, "gamma", 1.0507010221481323);
    return (x) => (x > 0 ? gamma * x : gamma * (alpha * Math.exp(x) - alpha));
  }),
  floatOp("Celu", (node) => {
    const alpha = attrFloat(node, "alpha", 1);
    return (x) => Math.max(0, x) + Math.min(0, alpha * (Math.exp(x / alpha) - 1));
  }),
  floatOp("LeakyRelu", (node) => {
    const alpha = attrFloat(node, "alpha", 0.01);
    return (x) => (x < 0 ? alpha * x : x);
  }),
  floatOp("HardSigmoid", (node) => {
    const alpha = attrFloat(node, "alpha", 0.2);
    const beta = attrFloat(node, "beta", 0.5);
    return (x) => Math.max(0, Math.min(1, alpha * x + beta));
  }),
  floatOp(
    "HardSwish",
    pure((x) => x * Math.max(0, Math.min(1, x / 6 + 0.5))),
  ),
  floatOp("ThresholdedRelu", (node) => {
    const alpha = attrFloat(node, "alpha", 1);
    return (x) => (x > alpha ? x : 0);
  }),
  floatOp("Shrink", (node) => {
    const lambd = attrFloat(node, "lambd", 0.5);
    const bias = attrFloat(node, "bias", 0);
    return (x) => (x < -lambd ? x + bias : x > lambd ? x - bias : 0);
  }),
];

/** PRelu: y = x < 0 ? slope · x : x, slope broadcast to x's shape (unidirectional broadcasting). */
const PRelu: OpDef = {
  opType: "PRelu",
  inferTypes: (ctx) => inferSameShape({ ...ctx, inputs: ctx.inputs.slice(0, 1) }, FLOAT_TYPES),
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const slope = requireInput(node, inputs, 1);
    requireFloat(node, x, "X");
    const rank = x.rank;
    if (slope.rank > rank)
      throw new OpError(node, `slope of rank ${slope.rank} does not broadcast to X [${x.dims}]`);
    const sDims = [...Array(rank - slope.rank).fill(1), ...slope.dims] as number[];
    sDims.forEach((d, i) => {
      if (d !== 1 && d !== x.dims[i])
        throw new OpError(node, `slope [${slope.dims}] does not broadcast to X [${x.dims}]`);
    });
    const sStrides = new Array<number>(rank).fill(0);
    for (let i = rank - 1, s = 1; i >= 0; i--) {
      sStrides[i] = sDims[i] === 1 ? 0 : s;
      s *= sDims[i]!;
    }
    const xs = floatData(x);
    const ss = slope.toFloat64();
    const out = new Float64Array(x.size);
    const idx = new Array<number>(rank).fill(0);
    let so = 0;
    for (let i = 0; i < x.size; i++) {
      const v = xs[i]!;
      out[i] = v < 0 ? ss[so]! * v : v;
      for (let d = rank - 1; d >= 0; d--) {
        if (++idx[d]! < x.dims[d]!) {
          so += sStrides[d]!;
          break;
        }
        so -= sStrides[d]! * (x.dims[d]! - 1);
        idx[d] = 0;
      }
    }
    return [tensorFromFloat64(x.type, out, x.dims)];
  },
};

export const activationOps: readonly OpDef[] = [...specs.map(unaryOp), PRelu];
registerOps(activationOps);
