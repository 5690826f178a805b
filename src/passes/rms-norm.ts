import type { Graph } from "../ir/graph.js";
import { opsetOf } from "../ir/graph.js";
import { GraphView } from "./graph-view.js";
import { inferGraphTypes } from "./infer-types.js";
import {
  any,
  constant,
  isScalarValue,
  type Match,
  oneOf,
  op,
  type Pattern,
  type Replacement,
  type RuleSet,
} from "./pattern.js";
import { floatAttr, intAttr, type NodeFactory } from "./rewrite.js";
import { type FusionOutcome, fusionOutcomes, runRewritePass } from "./rewrite-driver.js";

/**
 * RMSNorm as exporters spell it out, `w · x / √(mean(x²) + ε)` over the last axis, becomes one
 * SimplifiedLayerNormalization (axis = -1, epsilon, stash_type = 1): the statistics in float32 (the reference
 * in float64) and one rounding of the output, where the spelled-out chain of a float16 model rounds after each
 * of its six ops. The forms: x² as Pow(x, 2) or Mul(x, x); ReduceMean over axes [-1] with keepdims (axes an
 * attribute before opset 18, an input from 18); x / √…, x · Reciprocal(√…) or x · (1 / √…) (torch.rsqrt as
 * the exporter writes it); HF's Cast to float32 of x and Cast back of x/rms (in float16-converted models both
 * target float16); the weight on either side of the last Mul.
 *
 * The node is in the ONNX domain, where onnxruntime registers SimplifiedLayerNormalization (an internal op of
 * its transformer optimizer, float32 and float16 on the CPU); onnxruntime has no com.microsoft one.
 */

const FLOAT_TYPES = ["float32", "float16"];

const near = (v: number) => (t: { size: number; getNumber(i: number): number }) =>
  t.size === 1 && Math.abs(t.getNumber(0) - v) <= 1e-6 * Math.abs(v);

const square: Pattern = oneOf(
  "x²",
  op("Pow", [any("x"), constant(undefined, isScalarValue(2), "2")], {
    capture: "square",
    label: "Pow(x, 2)",
  }),
  op("Mul", [any("x"), any("x")], { capture: "square", label: "x · x" }),
);

const rms: Pattern = op(
  "Sqrt",
  [
    op("Add", [op("ReduceMean", [square], { capture: "mean", label: "mean(x²)" }), any("eps")], {
      commutative: true,
      label: "mean(x²) + ε",
    }),
  ],
  { label: "√(mean(x²) + ε)" },
);

/** x / rms in the three spellings. */
const normalized: Pattern = oneOf(
  "x / rms",
  op("Div", [any("x"), rms], { capture: "normalized", label: "x / rms" }),
  op("Mul", [any("x"), op("Reciprocal", [rms], { label: "1 / rms" })], {
    commutative: true,
    capture: "normalized",
    label: "x · Reciprocal(rms)",
  }),
  op("Mul", [any("x"), op("Div", [constant(undefined, near(1), "1"), rms], { label: "1 / rms" })], {
    commutative: true,
    capture: "normalized",
    label: "x · (1 / rms)",
  }),
);

const rmsNorm: Pattern = op(
  "Mul",
  [
    any("w"),
    oneOf("x / rms, cast back or not", op("Cast", [normalized], { capture: "castBack" }), normalized),
  ],
  { commutative: true, label: "w · x / rms" },
);

interface RmsContext {
  view: GraphView;
  factory: NodeFactory;
  opset: number;
}

/** ReduceMean's axes (attribute before opset 18, input from 18); undefined = every axis. */
function reduceAxes(m: Match, ctx: RmsContext): number[] | undefined | string {
  const node = m.nodes.get("mean")!;
  if (ctx.opset < 18) {
    const a = node.attrs.axes;
    return a?.type === "ints" ? a.value.map(Number) : undefined;
  }
  const input = node.inputs[1];
  if (!input) return undefined;
  const t = ctx.view.constant(input);
  if (!t) return `ReduceMean '${node.name}' axes '${input}' are not a constant`;
  return Array.from(t.toFloat64());
}

function rewrite(m: Match, ctx: RmsContext): Replacement | { decline: string } {
  const { view, factory } = ctx;
  const root = view.producer.get(m.root)!;
  const matched = new Set(m.matched);
  // Every intermediate must be private to the chain; otherwise removing it would break another reader.
  for (const n of m.matched) {
    if (n === root) continue;
    for (const o of n.outputs) {
      if (view.graphOutputs.has(o)) return { decline: `'${n.name}' output '${o}' is a graph output` };
      if ((view.readers.get(o) ?? []).some((r) => !matched.has(r)))
        return { decline: `'${n.name}' is read elsewhere` };
    }
  }
  const mean = m.nodes.get("mean")!;
  const x = m.values.get("x")!;
  const xType = view.typeOf(x);
  const rank = xType?.shape?.length;
  if (rank === undefined) return { decline: `rank of '${x}' is unknown` };
  const axes = reduceAxes(m, ctx);
  if (typeof axes === "string") return { decline: axes };
  if (axes === undefined && rank !== 1) return { decline: `ReduceMean '${mean.name}' reduces every axis` };
  if (axes && (axes.length !== 1 || (axes[0]! < 0 ? axes[0]! + rank : axes[0]!) !== rank - 1))
    return { decline: `ReduceMean '${mean.name}' axes [${axes}] are not the last axis of rank ${rank}` };
  const keep = mean.attrs.keepdims;
  if (keep?.type === "int" && keep.value === 0)
    return { decline: `ReduceMean '${mean.name}' has keepdims = 0` };

  const epsName = m.values.get("eps")!;
  const eps = view.constant(epsName);
  if (eps?.size !== 1) return { decline: `ε '${epsName}' is not a scalar constant` };

  const wName = m.values.get("w")!;
  const w = view.constant(wName);
  if (!w) return { decline: `weight '${wName}' is not a constant` };
  const D = xType!.shape![rank - 1];
  if (typeof D !== "number") return { decline: `last dim of '${x}' is unknown` };
  if (w.rank < 1 || w.rank > rank || w.dims[w.rank - 1] !== D || w.dims.slice(0, -1).some((d) => d !== 1))
    return { decline: `weight has shape [${w.dims}], not [${D}] (the last dim of '${x}')` };

  // HF's Cast of x to float32: the fused op reads x before it when the types then line up (the statistics are
  // float32 in the op anyway).
  const xCast = view.producer.get(x);
  const xIn =
    xCast?.opType === "Cast" &&
    xCast.domain === "" &&
    xCast.inputs[0] &&
    view.typeOf(xCast.inputs[0])?.dtype === w.type
      ? xCast.inputs[0]
      : x;
  const inType = view.typeOf(xIn)?.dtype;
  const outType = view.typeOf(m.root)?.dtype;
  if (!inType || !FLOAT_TYPES.includes(inType)) return { decline: `x is ${inType ?? "of unknown dtype"}` };
  if (inType !== w.type || outType !== w.type)
    return { decline: `x is ${inType}, the weight ${w.type}, the result ${outType ?? "unknown"}` };

  const scale = w.rank === 1 ? wName : factory.constant(w.reshape([D]), "scale");
  factory.add(
    "SimplifiedLayerNormalization",
    [xIn, scale],
    { axis: intAttr(-1), epsilon: floatAttr(eps.getNumber(0)), stash_type: intAttr(1) },
    { output: m.root },
  );
  return { add: [], remove: [...m.matched] };
}

const rmsNormRules: RuleSet<RmsContext> = [{ name: "rms norm", pattern: rmsNorm, rewrite }];

/** The weight Mul that was (or was not) fused. */
export type RmsNormOutcome = FusionOutcome;

/** Fuses every spelled-out RMSNorm; returns one outcome per candidate Mul that matched up to its ReduceMean. */
export function fuseRmsNormReport(graph: Graph): RmsNormOutcome[] {
  const inferred = inferGraphTypes(graph);
  const view = new GraphView(graph, inferred.types, inferred.constants);
  const opset = opsetOf(graph, "");
  const outcomes = runRewritePass(graph, view, {
    rules: rmsNormRules,
    prefix: "rmsnorm",
    context: (_, factory) => ({ view, factory, opset }),
  });
  return fusionOutcomes(outcomes, "overlaps another RMSNorm");
}

/** Fuses every spelled-out RMSNorm into SimplifiedLayerNormalization; returns how many were fused. */
export function fuseRmsNorm(graph: Graph): number {
  return fuseRmsNormReport(graph).filter((o) => o.fused).length;
}
