import type { Attribute, Dim, Graph, ValueType } from "../ir/graph.js";
import { opsetOf } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { GraphView } from "./graph-view.js";
import { inferGraphTypes } from "./infer-types.js";
import {
  any,
  constant,
  type Match,
  type NodeCheck,
  op,
  type Pattern,
  type Replacement,
  type RuleSet,
} from "./pattern.js";
import { intAttr, type NodeFactory } from "./rewrite.js";
import { runRewritePass } from "./rewrite-driver.js";

/**
 * The bias Add of a linear layer, `Add(MatMul(x, W), b)` (bias on either side) with W a constant [K, N] and b a
 * constant [N], becomes one Gemm whose C is the bias: the GEMM starts from the broadcast bias (beta = 1) instead
 * of a second pass over the output. Gemm is 2-D, so a rank > 2 x goes through Flatten(axis = rank-1) before and
 * a Reshape back to x's leading dims + N after; both only re-view the data. Plain ONNX, so onnxruntime runs it.
 */

const FLOAT_TYPES = ["float32", "float16"];

interface LinearContext {
  view: GraphView;
  factory: NodeFactory;
  opset: number;
}

const rankOf = (view: GraphView, value: string): number | undefined => view.typeOf(value)?.shape?.length;

/** The MatMul's A operand has a known rank in the given range. */
const xRank =
  (test: (rank: number) => boolean, what: string): NodeCheck =>
  (node, view) => {
    const rank = rankOf(view, node.inputs[0] ?? "");
    if (rank === undefined) return `rank of '${node.inputs[0]}' is unknown`;
    return test(rank) || `'${node.inputs[0]}' has rank ${rank}, not ${what}`;
  };

const isWeight = (t: Tensor) => t.rank === 2 && FLOAT_TYPES.includes(t.type);

/** MatMul(x, W) + b, either order. */
const linear = (check: NodeCheck): Pattern =>
  op(
    "Add",
    [
      op("MatMul", [any("x"), constant("W", isWeight, "W [K, N] float")], {
        capture: "matmul",
        check,
        label: "MatMul(x, W)",
      }),
      constant("b", undefined, "bias b"),
    ],
    { commutative: true, label: "MatMul + bias" },
  );

/** Checks shared by both rules; returns the bias as a 1-D [N] value name, or a decline. */
function checkLinear(m: Match, ctx: LinearContext): { bias: string; x: string; xType: ValueType } | string {
  const { view, factory } = ctx;
  if (ctx.opset < 7) return `opset ${ctx.opset} < 7 (Gemm there needs the broadcast attribute)`;
  const matmul = m.nodes.get("matmul")!;
  const mm = matmul.outputs[0]!;
  if (view.useCount(mm) !== 1) return `MatMul '${matmul.name}' output is read elsewhere`;
  const x = m.values.get("x")!;
  const W = view.constant(m.values.get("W")!)!;
  const b = view.constant(m.values.get("b")!)!;
  const xType = view.typeOf(x);
  if (!xType?.shape) return `shape of '${x}' is unknown`;
  if (xType.dtype !== W.type) return `x is ${xType.dtype}, W is ${W.type}`;
  if (b.type !== W.type) return `bias is ${b.type}, W is ${W.type}`;
  const [K, N] = W.dims as [number, number];
  const xK = xType.shape[xType.shape.length - 1];
  if (typeof xK === "number" && xK !== K) return `x's last dim ${xK} is not W's K ${K}`;
  // b must broadcast over the output's rows only: [N] or [1, …, 1, N], never of higher rank than the output.
  if (b.rank < 1 || b.rank > xType.shape.length) return `bias has shape [${b.dims}], not [N]`;
  if (b.dims[b.rank - 1] !== N || b.dims.slice(0, -1).some((d) => d !== 1))
    return `bias has shape [${b.dims}], not [${N}] (W is [${K}, ${N}])`;
  const bias = b.rank === 1 ? m.values.get("b")! : factory.constant(b.reshape([N]), "bias");
  return { bias, x, xType };
}

function rewrite2d(m: Match, ctx: LinearContext): Replacement | { decline: string } {
  const checked = checkLinear(m, ctx);
  if (typeof checked === "string") return { decline: checked };
  const root = ctx.view.producer.get(m.root)!;
  ctx.factory.add("Gemm", [checked.x, m.values.get("W")!, checked.bias], {}, { output: m.root });
  return { add: [], remove: [root, m.nodes.get("matmul")!] };
}

/** The Reshape target [...x's leading dims, N]: a constant when it can be one, else Shape/Slice/Concat. */
function targetShape(x: string, lead: readonly Dim[], N: number, ctx: LinearContext): string {
  const f = ctx.factory;
  const unknown = lead.filter((d) => typeof d !== "number").length;
  const zero = lead.some((d) => d === 0);
  if (unknown === 0) return f.int64s([...(lead as number[]), N]);
  // One unknown dim among non-zero known ones: Reshape's -1 recovers it (N ≥ 1, so the rest is non-zero).
  if (unknown === 1 && !zero && N > 0)
    return f.int64s([...lead.map((d) => (typeof d === "number" ? d : -1)), N]);
  const shape = f.add("Shape", [x]);
  const rank = lead.length + 1;
  const leading =
    ctx.opset >= 10
      ? f.add("Slice", [shape, f.int64s([0]), f.int64s([rank - 1]), f.int64s([0])])
      : f.add("Slice", [shape], {
          starts: { type: "ints", value: [0] },
          ends: { type: "ints", value: [rank - 1] },
          axes: { type: "ints", value: [0] },
        });
  return f.add("Concat", [leading, f.int64s([N])], { axis: intAttr(0) });
}

function rewriteNd(m: Match, ctx: LinearContext): Replacement | { decline: string } {
  const checked = checkLinear(m, ctx);
  if (typeof checked === "string") return { decline: checked };
  const { x, xType } = checked;
  const shape = xType.shape!;
  const rank = shape.length;
  const W = ctx.view.constant(m.values.get("W")!)!;
  const N = W.dims[1]!;
  const f = ctx.factory;
  const flat = f.add("Flatten", [x], { axis: intAttr(rank - 1) });
  const gemm = f.add("Gemm", [flat, m.values.get("W")!, checked.bias]);
  // The target holds x's real dims, so a 0 is a real 0 (an empty batch or sequence), not "copy this dim":
  // allowzero = 1 where Reshape has it (opset 14).
  const attrs: Record<string, Attribute> = ctx.opset >= 14 ? { allowzero: intAttr(1) } : {};
  f.add("Reshape", [gemm, targetShape(x, shape.slice(0, -1), N, ctx)], attrs, { output: m.root });
  const root = ctx.view.producer.get(m.root)!;
  return { add: [], remove: [root, m.nodes.get("matmul")!] };
}

/** x of rank 2 needs Gemm alone; a higher rank is flattened to 2-D around it. */
function rewrite(m: Match, ctx: LinearContext): Replacement | { decline: string } {
  return rankOf(ctx.view, m.values.get("x")!) === 2 ? rewrite2d(m, ctx) : rewriteNd(m, ctx);
}

const linearBiasRules: RuleSet<LinearContext> = [
  { name: "linear bias → Gemm", pattern: linear(xRank((r) => r >= 2, "≥ 2")), rewrite },
];

export interface LinearBiasOutcome {
  /** The Add that was (or was not) folded. */
  node: string;
  fused: boolean;
  rule?: string;
  reason?: string;
}

/**
 * Folds every linear layer's bias Add into a Gemm; returns one outcome per Add fed by a MatMul (fused or
 * declined, with the reason).
 */
export function fuseLinearBiasReport(graph: Graph): LinearBiasOutcome[] {
  // Only initializers count as W and b (not values the type inference folded from shape computations).
  const view = new GraphView(graph, inferGraphTypes(graph).types, graph.initializers);
  const opset = opsetOf(graph, "");
  const outcomes = runRewritePass(graph, view, {
    rules: linearBiasRules,
    prefix: "linear",
    context: (_, factory) => ({ view, factory, opset }),
    // Only Adds fed by a MatMul are linear layers (and get an outcome in the report).
    accept: (node) => node.inputs.some((i) => view.producer.get(i)?.opType === "MatMul"),
  });
  return outcomes.map((o) =>
    o.replacement && o.applied
      ? { node: o.node.name, fused: true, rule: o.rule }
      : { node: o.node.name, fused: false, reason: o.reason ?? "overlaps another linear layer" },
  );
}

/** Folds every linear layer's bias Add into a Gemm; returns how many were fused. */
export function fuseLinearBias(graph: Graph): number {
  return fuseLinearBiasReport(graph).filter((o) => o.fused).length;
}
