/**
 * The float32 fast paths of the ops that show in transformer profiles besides GEMM and attention —
 * LayerNormalization, com.microsoft SkipLayerNormalization, Softmax, the GELU family and Add — on the native
 * kernels. Each returns undefined when its case is not the plain one the native kernel covers (another
 * dtype, a broadcast it does not do, no addon): the registry then runs the op's contract, so the semantics
 * (validation, errors, odd layouts) stay the contract's and only the arithmetic moves.
 */
import type { Node } from "../../ir/graph.js";
import { Tensor } from "../../ir/tensor.js";
import { geluTanh } from "../../ops/elementwise-util.js";
import { attrFloat, attrInt, attrString } from "../../ops/registry.js";
import type { CpuCompute } from "./compute.js";
import type { NativeKernels } from "./native/index.js";

export type NativeOp = (
  native: NativeKernels,
  compute: CpuCompute,
  node: Node,
  inputs: (Tensor | undefined)[],
  opset: number,
) => Tensor[] | undefined;

const f32 = (t: Tensor | undefined): Float32Array | undefined =>
  t?.type === "float32" ? (t.data as Float32Array) : undefined;

/** A per-feature parameter read flat: float32 of exactly `d` elements (any leading 1-dims). */
const flatParam = (t: Tensor | undefined, d: number): Float32Array | undefined =>
  t && t.size === d ? f32(t) : undefined;

const axisOf = (a: number, rank: number): number => (a < 0 ? a + rank : a);

/** Whether a node output is consumed (an optional output may be named "" or be absent). */
const wanted = (node: Node, i: number): boolean => Boolean(node.outputs[i]);

export const layerNorm: NativeOp = (native, compute, node, [x, scale, bias]) => {
  const xs = f32(x);
  if (!x || !xs || x.rank === 0 || attrInt(node, "stash_type", 1) !== 1) return undefined;
  const axis = axisOf(attrInt(node, "axis", -1), x.rank);
  if (axis < 0 || axis >= x.rank) return undefined;
  const d = x.dims.slice(axis).reduce((a, b) => a * b, 1);
  const gamma = flatParam(scale, d);
  const beta = flatParam(bias, d);
  if (!gamma || (bias && !beta) || d === 0) return undefined;
  const rows = x.size / d;
  const y = compute.allocFloat32(x.size);
  const mean = new Float32Array(rows);
  const invStd = new Float32Array(rows);
  native.layerNorm(xs, y, rows, d, gamma, { beta, epsilon: attrFloat(node, "epsilon", 1e-5), mean, invStd });
  const stats = x.dims.map((n, i) => (i < axis ? n : 1));
  return [
    new Tensor("float32", y, x.dims),
    new Tensor("float32", mean, stats),
    new Tensor("float32", invStd, stats),
  ];
};

export const skipLayerNorm: NativeOp = (native, compute, node, [x, skip, gamma, beta, bias]) => {
  const xs = f32(x);
  const ss = f32(skip);
  if (!x || !skip || !xs || !ss || x.rank < 2) return undefined;
  const d = x.dims[x.rank - 1]!;
  // skip is [.., S, d] repeated over x's leading axes: its trailing dims must equal x's (no inner broadcast).
  const trailing = x.dims.slice(x.rank - skip.rank);
  const fits =
    skip.rank >= 2 &&
    skip.rank <= x.rank &&
    skip.dims.every(
      (n, i) => n === trailing[i] || (n === 1 && skip.dims.slice(0, i + 1).every((m) => m === 1)),
    );
  const g = flatParam(gamma, d);
  const b = flatParam(beta, d);
  const bi = flatParam(bias, d);
  if (!fits || !g || (beta && !b) || (bias && !bi) || d === 0 || skip.size === 0) return undefined;
  // The native kernel does not return the statistics: a graph that reads them runs the contract.
  if (wanted(node, 1) || wanted(node, 2)) return undefined;
  const rows = x.size / d;
  const y = compute.allocFloat32(x.size);
  const sum = wanted(node, 3) ? compute.allocFloat32(x.size) : undefined;
  native.skipLayerNorm({
    x: xs,
    skip: ss,
    gamma: g,
    beta: b,
    bias: bi,
    y,
    sum,
    rows,
    d,
    skipRows: skip.size / d,
    epsilon: attrFloat(node, "epsilon", 1e-12),
  });
  // Unread statistics as empty placeholders of the right shape class (no output reads them).
  const none = new Tensor("float32", new Float32Array(0), [0]);
  return sum
    ? [new Tensor("float32", y, x.dims), none, none, new Tensor("float32", sum, x.dims)]
    : [new Tensor("float32", y, x.dims)];
};

export const softmax: NativeOp = (native, compute, node, [x], opset) => {
  const xs = f32(x);
  if (!x || !xs || x.rank === 0 || x.size === 0) return undefined;
  let d: number;
  if (opset < 13) {
    // Opsets 1–12 normalise rows of the 2-D view at `axis`: always contiguous.
    const axis = axisOf(attrInt(node, "axis", 1), x.rank);
    if (axis < 0 || axis >= x.rank) return undefined;
    d = x.dims.slice(axis).reduce((a, b) => a * b, 1);
  } else {
    if (axisOf(attrInt(node, "axis", -1), x.rank) !== x.rank - 1) return undefined;
    d = x.dims[x.rank - 1]!;
  }
  if (d === 0) return undefined;
  const y = compute.allocFloat32(x.size);
  native.softmax(xs, y, x.size / d, d);
  return [new Tensor("float32", y, x.dims)];
};

/** A GELU-family op: y = act(x (+ bias over the last axis)). */
export function activation(
  act: (node: Node) => "gelu" | "fastGelu" | "relu" | "sigmoid" | undefined,
  withBias: boolean,
): NativeOp {
  return (native, compute, node, [x, bias]) => {
    const xs = f32(x);
    const kind = act(node);
    if (!x || !xs || !kind || x.size === 0) return undefined;
    const d = x.dims[x.rank - 1] ?? 1;
    const b = withBias && bias ? flatParam(bias, d) : undefined;
    if (bias && !b) return undefined;
    const y = compute.allocFloat32(x.size);
    native.activation(kind, xs, y, { bias: b });
    exactTail(kind, xs, b, y);
    return [new Tensor("float32", y, x.dims)];
  };
}

/**
 * FastGelu's negative inputs: the native x/(1 + e^{-2u}) drifts by a few float32 ulps from the reference there,
 * so they are recomputed with the reference's scalar function (issue 13). The erf GELU needs no such pass: the
 * native kernel takes its negative inputs through the reference's float64 formulas (native/src/vec.h).
 */
function exactTail(
  kind: "gelu" | "fastGelu" | "relu" | "sigmoid",
  x: Float32Array,
  bias: Float32Array | undefined,
  y: Float32Array,
): void {
  if (kind !== "fastGelu") return;
  const w = bias?.length ?? 0;
  for (let i = 0; i < x.length; i++) {
    const v = bias ? Math.fround(x[i]! + bias[i % w]!) : x[i]!;
    if (v < 0 || !Number.isFinite(v)) y[i] = geluTanh(v);
  }
}

export const onnxGeluKind = (node: Node): "gelu" | "fastGelu" | undefined => {
  const approximate = attrString(node, "approximate", "none");
  return approximate === "none" ? "gelu" : approximate === "tanh" ? "fastGelu" : undefined;
};

/** Whether `small` broadcasts over `big` as a repeated trailing block (leading dims 1 or missing). */
function trailingBlock(big: readonly number[], small: readonly number[]): boolean {
  if (small.length > big.length) return false;
  const lead = small.length - 1;
  let i = 0;
  // Leading 1s of `small`, then dims equal to big's trailing dims.
  while (i < lead && small[i] === 1) i++;
  for (let j = i; j < small.length; j++) if (small[j] !== big[big.length - small.length + j]) return false;
  return true;
}

/** Add of same shapes, or one operand a trailing block of the other (a bias row, a [S, d] position table). */
export const add: NativeOp = (native, compute, _node, [a, b]) => {
  const as = f32(a);
  const bs = f32(b);
  if (!a || !b || !as || !bs) return undefined;
  const [big, small, bigData, smallData] = a.size >= b.size ? [a, b, as, bs] : ([b, a, bs, as] as const);
  if (small.size === 0 || !trailingBlock(big.dims, small.dims)) return undefined;
  // The output has the larger operand's shape only if the smaller adds no axes of its own.
  if (small.rank > big.rank) return undefined;
  const y = compute.allocFloat32(big.size);
  native.add(bigData, smallData, y, { bLength: small.size });
  return [new Tensor("float32", y, big.dims)];
};
