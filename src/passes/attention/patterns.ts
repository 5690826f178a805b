import type { Node } from "../../ir/graph.js";
import type { GraphView } from "../graph-view.js";
import {
  any,
  constant,
  isScalarValue,
  type NodeCheck,
  oneOf,
  op,
  type Pattern,
  scalarConstant,
  skippable,
} from "../pattern.js";

/**
 * The attention patterns as data. The probability side (Softmax → guard/dropout → MatMul V) and the
 * score side's single steps (scale, additive bias, masked fill, pre-scaled Q/Kᵀ) are patterns; the
 * walker in score-chain.ts strings the score steps together because exporters put any number of them,
 * in any order, between MatMul(Q,Kᵀ) and Softmax.
 */

function rankOf(view: GraphView, value: string): number | undefined {
  return view.typeOf(value)?.shape?.length;
}

/** Softmax must normalise over the key axis (the last one); anything else is not attention. */
export const softmaxOverKeys: NodeCheck = (node: Node, view: GraphView) => {
  const a = node.attrs.axis;
  const axis = a?.type === "int" ? a.value : undefined;
  const rank = rankOf(view, node.inputs[0] ?? "");
  const opset = view.graph.opsets.get("") ?? 17;
  if (axis === undefined) {
    // Default axis: -1 from opset 13, 1 (coerced to 2-D) before — the latter is the last axis only for rank 2.
    return opset >= 13 || rank === 2
      ? true
      : "Softmax with the default axis 1 (opset < 13) does not normalise over keys";
  }
  if (axis === -1) return true;
  if (rank !== undefined && axis === rank - 1) return true;
  return `Softmax normalises over axis ${axis}${rank !== undefined ? ` of a rank-${rank} tensor` : ""}, not the last (key) axis`;
};

const softmax: Pattern = op("Softmax", [any("scores")], { capture: "softmax", check: softmaxOverKeys });

/** PyTorch SDPA's guard: Where(IsNaN(p), 0, p) turns the NaNs of fully masked rows into zeros. */
const nanGuard: Pattern = op(
  "Where",
  [op("IsNaN", [any("guarded")]), constant(undefined, isScalarValue(0), "zero"), softmax],
  { label: "IsNaN guard" },
);

/** Attention probabilities: Softmax, optionally guarded, optionally behind inference Dropout/Identity/Cast. */
export const probabilities: Pattern = skippable(oneOf("attention probabilities", nanGuard, softmax));

/** Root pattern, matched at the output of the MatMul that applies the probabilities to V. */
export const attentionRoot: Pattern = op("MatMul", [probabilities, any("v")], {
  capture: "context",
  label: "MatMul(probs, V)",
});

// ---- single steps of the score chain ----------------------------------------------------------------------

/** scores · c or c · scores with a scalar constant c. */
export const scaleMul: Pattern = op("Mul", [any("x"), scalarConstant("c")], {
  commutative: true,
  label: "scale Mul",
});
/** scores / c with a scalar constant c. */
export const scaleDiv: Pattern = op("Div", [any("x"), scalarConstant("c")], { label: "scale Div" });
/** masked_fill: Where(cond, scores, fill) or Where(cond, fill, scores) with a scalar constant fill. */
export const fillKeep: Pattern = op("Where", [any("cond"), any("x"), scalarConstant("fill")], {
  label: "masked fill",
});
export const fillReplace: Pattern = op("Where", [any("cond"), scalarConstant("fill"), any("x")], {
  label: "masked fill",
});
/** Pre-scaled operands of MatMul(Q, Kᵀ) (SDPA multiplies both by √scale). */
export const preScale: Pattern = oneOf("pre-scale", scaleMul, scaleDiv);
