/**
 * NegativeLogLikelihoodLoss (12) and SoftmaxCrossEntropyLoss (12), written from the ONNX reference
 * (onnx/reference/ops/op_negative_log_likelihood_loss.py, op_softmax_cross_entropy_loss.py): input [N, C] or
 * [N, C, d1, …], integer target [N] or [N, d1, …], optional per-class weight [C], reduction none / sum / mean
 * (mean divides by the sum of the gathered weights when weights or ignore_index are in play), ignore_index.
 */
import { OpError } from "../errors.js";
import type { Dim, Node, ValueType } from "../ir/graph.js";
import { sizeOf, type Tensor } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { requireFloat, tensorFromFloat64 } from "./float-data.js";
import { attrInt, attrString, hasAttr, type OpDef, registerOps } from "./registry.js";

/** Loss per element of target, or reduced, from log-probabilities laid out [N, C, D]. */
function nll(node: Node, logProb: Float64Array, dims: readonly number[], target: Tensor, weight?: Tensor) {
  const [N, C] = dims as [number, number];
  const D = sizeOf(dims.slice(2));
  if (target.type !== "int64" && target.type !== "int32")
    throw new OpError(node, `target must be int32 or int64, got ${target.type}`);
  if (target.size !== N * D)
    throw new OpError(node, `target [${target.dims}] does not match input [${dims}]`);
  const ignore = hasAttr(node, "ignore_index") ? attrInt(node, "ignore_index") : undefined;
  const reduction = attrString(node, "reduction", "mean");
  if (!["none", "sum", "mean"].includes(reduction))
    throw new OpError(node, `reduction must be none, sum or mean, got '${reduction}'`);
  const t = target.toNumbers();
  const w = weight?.toFloat64();
  const loss = new Float64Array(N * D);
  const gathered = w || ignore !== undefined ? new Float64Array(N * D) : undefined;
  for (let n = 0; n < N; n++)
    for (let d = 0; d < D; d++) {
      const c = t[n * D + d]!;
      const ignored = c === ignore;
      if (!ignored && (c < 0 || c >= C)) throw new OpError(node, `target ${c} is outside [0, ${C})`);
      if (gathered) gathered[n * D + d] = ignored ? 0 : w ? w[Math.min(Math.max(c, 0), C - 1)]! : 1;
      const v = ignored ? 0 : -logProb[(n * C + c) * D + d]!;
      loss[n * D + d] = gathered ? gathered[n * D + d]! * v : v;
    }
  if (reduction === "none") return { values: loss, dims: [...target.dims] };
  const sum = loss.reduce((a, b) => a + b, 0);
  if (reduction === "sum") return { values: Float64Array.of(sum), dims: [] };
  const denominator = gathered ? gathered.reduce((a, b) => a + b, 0) : loss.length;
  return { values: Float64Array.of(sum / denominator), dims: [] };
}

function lossType(node: Node, x: ValueType | undefined, target: ValueType | undefined): ValueType {
  const reduction = attrString(node, "reduction", "mean");
  if (!x) return { dtype: "float32" };
  return { dtype: x.dtype, shape: reduction === "none" ? (target?.shape as Dim[] | undefined) : [] };
}

const NegativeLogLikelihoodLoss: OpDef = {
  opType: "NegativeLogLikelihoodLoss",
  inferTypes: (ctx) => [lossType(ctx.node, ctx.inputs[0], ctx.inputs[1])],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "input");
    if (x.rank < 2) throw new OpError(node, `input must be [N, C, …], got [${x.dims}]`);
    const r = nll(node, x.toFloat64(), x.dims, requireInput(node, inputs, 1), inputs[2]);
    return [tensorFromFloat64(x.type, r.values, r.dims)];
  },
};

/** log(softmax(x)) over axis 1 of [N, C, D]. */
function logSoftmaxAxis1(x: Float64Array, dims: readonly number[]): Float64Array {
  const [N, C] = dims as [number, number];
  const D = sizeOf(dims.slice(2));
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let d = 0; d < D; d++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let c = 0; c < C; c++) max = Math.max(max, x[(n * C + c) * D + d]!);
      let sum = 0;
      for (let c = 0; c < C; c++) sum += Math.exp(x[(n * C + c) * D + d]! - max);
      const shift = max + Math.log(sum);
      for (let c = 0; c < C; c++) out[(n * C + c) * D + d] = x[(n * C + c) * D + d]! - shift;
    }
  return out;
}

const SoftmaxCrossEntropyLoss: OpDef = {
  opType: "SoftmaxCrossEntropyLoss",
  inferTypes: (ctx) => {
    const x = ctx.inputs[0];
    return [lossType(ctx.node, x, ctx.inputs[1]), x ? { ...x } : { dtype: "float32" }];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "scores");
    if (x.rank < 2) throw new OpError(node, `scores must be [N, C, …], got [${x.dims}]`);
    const logProb = logSoftmaxAxis1(x.toFloat64(), x.dims);
    const r = nll(node, logProb, x.dims, requireInput(node, inputs, 1), inputs[2]);
    return [tensorFromFloat64(x.type, r.values, r.dims), tensorFromFloat64(x.type, logProb, x.dims)];
  },
};

export const lossOps: readonly OpDef[] = [NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss];
registerOps(lossOps);
