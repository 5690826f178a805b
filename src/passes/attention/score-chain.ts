import type { Node } from "../../ir/graph.js";
import type { GraphView } from "../graph-view.js";
import { isMatch, match, type Pattern } from "../pattern.js";
import { fillKeep, fillReplace, preScale, scaleDiv, scaleMul } from "./patterns.js";

/** An additive term of the attention bias, as found between MatMul(Q,Kᵀ) and Softmax. */
export type BiasTerm =
  | { kind: "add"; value: string; multiplier: number; node: Node }
  /** masked_fill: positions where `cond` is `fillWhen` get the constant `fill` instead of the score. */
  | { kind: "fill"; cond: string; fill: string; fillWhen: boolean; multiplier: number; node: Node };

export interface ScoreChain {
  /** MatMul(Q, Kᵀ). */
  qk: Node;
  /** Q and Kᵀ with any constant pre-scaling peeled off. */
  q: string;
  kT: string;
  /** Product of every constant factor on the scores (Mul/Div after the MatMul and on Q and Kᵀ). */
  scale: number;
  biases: BiasTerm[];
  nodes: Node[];
}

const CHAIN_OPS = new Set(["Mul", "Div", "Add", "Where", "Cast", "Identity", "MatMul"]);

/** Hops from `value` back to a MatMul through score-chain ops, or Infinity: tells scores from bias. */
function distanceToMatMul(value: string, view: GraphView, budget = 8): number {
  const node = view.producer.get(value);
  if (!node || !CHAIN_OPS.has(node.opType) || node.domain !== "") return Number.POSITIVE_INFINITY;
  if (node.opType === "MatMul") return 0;
  if (budget === 0) return Number.POSITIVE_INFINITY;
  let best = Number.POSITIVE_INFINITY;
  for (const i of node.inputs) if (i) best = Math.min(best, 1 + distanceToMatMul(i, view, budget - 1));
  return best;
}

function scalarOf(view: GraphView, value: string): number {
  return view.constant(value)!.getNumber(0);
}

function tryMatch(p: Pattern, value: string, view: GraphView) {
  const m = match(p, value, view);
  return isMatch(m) ? m : undefined;
}

function describe(node: Node): string {
  return `${node.opType} '${node.name}'`;
}

/**
 * Walks from the Softmax input back to MatMul(Q, Kᵀ), collecting constant scale factors and additive
 * bias terms in any order. A scale met before (closer to Softmax than) a bias also scales that bias, so
 * each term remembers the product of the scales above it.
 */
export function walkScoreChain(scores: string, view: GraphView): ScoreChain | { decline: string } {
  const nodes: Node[] = [];
  const biases: BiasTerm[] = [];
  let scale = 1;
  let value = scores;
  for (let step = 0; step < 24; step++) {
    const node = view.producer.get(value);
    if (!node) return { decline: `the Softmax input '${value}' is not computed from MatMul(Q, Kᵀ)` };
    if (node.domain !== "") return { decline: `${describe(node)} in the score chain is not a standard op` };
    switch (node.opType) {
      case "MatMul": {
        nodes.push(node);
        let q = node.inputs[0]!;
        let kT = node.inputs[1]!;
        for (const side of ["q", "k"] as const) {
          for (let hop = 0; hop < 4; hop++) {
            const v = side === "q" ? q : kT;
            const m = tryMatch(preScale, v, view);
            if (!m) break;
            const n = view.producer.get(v)!;
            const c = scalarOf(view, m.values.get("c")!);
            scale *= n.opType === "Div" ? 1 / c : c;
            nodes.push(n);
            if (side === "q") q = m.values.get("x")!;
            else kT = m.values.get("x")!;
          }
        }
        return { qk: node, q, kT, scale, biases, nodes };
      }
      case "Cast":
      case "Identity":
        nodes.push(node);
        value = node.inputs[0]!;
        continue;
      case "Mul":
      case "Div": {
        const m = tryMatch(node.opType === "Mul" ? scaleMul : scaleDiv, value, view);
        if (!m) {
          const side =
            node.inputs.find((i) => distanceToMatMul(i, view) === Number.POSITIVE_INFINITY) ?? node.inputs[1];
          return {
            decline: `${describe(node)} scales the scores by '${side}', which is not a scalar constant`,
          };
        }
        const c = scalarOf(view, m.values.get("c")!);
        if (!Number.isFinite(c) || c === 0) return { decline: `${describe(node)} scales the scores by ${c}` };
        scale *= node.opType === "Mul" ? c : 1 / c;
        nodes.push(node);
        value = m.values.get("x")!;
        continue;
      }
      case "Add": {
        const [a, b] = node.inputs as [string, string];
        const da = distanceToMatMul(a, view);
        const db = distanceToMatMul(b, view);
        if (da === Number.POSITIVE_INFINITY && db === Number.POSITIVE_INFINITY)
          return { decline: `neither input of ${describe(node)} comes from MatMul(Q, Kᵀ)` };
        const [chain, bias] = db < da ? [b, a] : [a, b];
        biases.push({ kind: "add", value: bias, multiplier: scale, node });
        nodes.push(node);
        value = chain;
        continue;
      }
      case "Where": {
        const keep = tryMatch(fillKeep, value, view);
        const replace = tryMatch(fillReplace, value, view);
        const m = keep ?? replace;
        if (!m)
          return {
            decline: `${describe(node)} selects between scores and a value that is not a scalar constant`,
          };
        biases.push({
          kind: "fill",
          cond: m.values.get("cond")!,
          fill: m.values.get("fill")!,
          fillWhen: !keep,
          multiplier: scale,
          node,
        });
        nodes.push(node);
        value = m.values.get("x")!;
        continue;
      }
      default:
        return {
          decline: `${describe(node)} between MatMul(Q, Kᵀ) and Softmax is not a scale, bias or mask`,
        };
    }
  }
  return { decline: "the score chain is longer than any attention export makes" };
}
