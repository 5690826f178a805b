import { floatToHalf, halfToFloat } from "../ir/float16.js";
import type { Graph } from "../ir/graph.js";
import { GraphView } from "./graph-view.js";
import {
  any,
  constant,
  type Match,
  oneOf,
  op,
  type Pattern,
  type Replacement,
  type RuleSet,
} from "./pattern.js";
import type { NodeFactory } from "./rewrite.js";
import { runRewritePass } from "./rewrite-driver.js";

/**
 * GELU as exporters spell it out, x·½·(1 + erf(x/√2)) in its common orders, becomes one com.microsoft Gelu:
 * one pass over the activation instead of five (Div, Erf, Add, Mul, Mul). onnxruntime runs the same node,
 * so the fused graph stays exportable.
 */

/**
 * The constant `v` as exporters write it in float32, or rounded to half exactly as a float16 conversion
 * writes it (√2 → 1.4140625; lifted back to float32 on webgpu, passes/lift-float16.ts).
 */
const near = (v: number) => (t: { size: number; getNumber(i: number): number }) =>
  t.size === 1 &&
  (Math.abs(t.getNumber(0) - v) <= 1e-6 * Math.abs(v) || t.getNumber(0) === halfToFloat(floatToHalf(v)));

const erfTerm: Pattern = op(
  "Add",
  [
    op("Erf", [
      oneOf(
        "x/√2",
        op("Div", [any("x"), constant(undefined, near(Math.SQRT2), "√2")]),
        op("Mul", [any("x"), constant(undefined, near(Math.SQRT1_2), "1/√2")], { commutative: true }),
      ),
    ]),
    constant(undefined, near(1), "1"),
  ],
  { commutative: true, label: "1 + erf(x/√2)" },
);

const half = constant(undefined, near(0.5), "½");

/** (x · (1 + erf)) · ½, as the TorchScript exporter writes HF's gelu. */
const xTimesErfThenHalf: Pattern = op("Mul", [op("Mul", [any("x"), erfTerm], { commutative: true }), half], {
  commutative: true,
});
/** (x · ½) · (1 + erf), as torch.nn.GELU decomposes. */
const halfXTimesErf: Pattern = op("Mul", [op("Mul", [any("x"), half], { commutative: true }), erfTerm], {
  commutative: true,
});

interface GeluContext {
  view: GraphView;
  factory: NodeFactory;
}

function rewrite(m: Match, ctx: GeluContext): Replacement | { decline: string } {
  const root = ctx.view.producer.get(m.root)!;
  const inner = m.matched.filter((n) => n !== root);
  // Every intermediate must be private to the chain; otherwise removing it would break another reader.
  for (const n of inner) {
    if (n.outputs.some((o) => ctx.view.useCount(o) !== 1))
      return { decline: `'${n.name}' is read elsewhere` };
  }
  const x = m.values.get("x")!;
  const type = ctx.view.typeOf(x);
  if (type && type.dtype !== "float32" && type.dtype !== "float16") return { decline: `dtype ${type.dtype}` };
  ctx.factory.add("Gelu", [x], {}, { domain: "com.microsoft", output: m.root });
  return { add: [], remove: [root, ...inner] };
}

const geluRules: RuleSet<GeluContext> = [
  { name: "gelu (x·(1+erf))·½", pattern: xTimesErfThenHalf, rewrite },
  { name: "gelu (x·½)·(1+erf)", pattern: halfXTimesErf, rewrite },
];

/** Rewrites every spelled-out erf GELU; returns how many were fused. */
export function fuseGelu(graph: Graph): number {
  const view = new GraphView(graph);
  const outcomes = runRewritePass(graph, view, {
    rules: geluRules,
    prefix: "gelu",
    context: (_, factory) => ({ view, factory }),
  });
  return outcomes.filter((o) => o.applied).length;
}
