import type { Attribute, Dim, Graph, Node } from "../ir/graph.js";
import { GraphView } from "./graph-view.js";
import { inferGraphTypes } from "./infer-types.js";
import { any, type Match, oneOf, op, type Pattern, type Replacement, type RuleSet } from "./pattern.js";
import type { NodeFactory } from "./rewrite.js";
import { type FusionOutcome, fusionOutcomes, runRewritePass } from "./rewrite-driver.js";

/**
 * A linear layer's epilogue goes into one mhafuse.FusedGemm(x, W, b[, residual]; activation), so the backends
 * apply it in the GEMM's epilogue, where the tile is still in registers, instead of passes of their own over
 * the [tokens, width] activations (on webgpu one dispatch fewer each). Through the Reshape that
 * fuse-linear-bias puts after a rank > 2 layer's Gemm (GELU being elementwise, a residual Add of equal shapes
 * too). The rules, by root op:
 *  - GELU of a Gemm: com.microsoft.Gelu and ONNX Gelu approximate = "none" (erf form, activation "Gelu");
 *    com.microsoft.FastGelu and ONNX Gelu approximate = "tanh" (activation "FastGelu"; FastGelu's bias becomes
 *    the Gemm's C where the Gemm has none).
 *  - a residual Add of a Gemm (or of a GELU of one, or of a FusedGemm without a residual): `Add(x, y)` with x
 *    of y's very shape (no broadcast: a bias row is fuse-linear-bias's) becomes the FusedGemm's residual
 *    input, added last — exactly the float32 Add it replaces. float32 only (a float16 graph would round the
 *    GEMM's result before the Add; the fused op rounds once). Adds that feed a LayerNorm were taken into
 *    SkipLayerNormalization by the pass before this one.
 * Adds are tried first, so that Add(x, GELU(Gemm)) becomes one node. `--target onnxruntime` lowers FusedGemm
 * back to Gemm (+ com.microsoft.Gelu / FastGelu) (+ Add).
 */

const FLOAT_TYPES = ["float32", "float16"];

const gemm = op("Gemm", undefined, { capture: "gemm" });
const unresidualFused = op("FusedGemm", undefined, {
  domain: "mhafuse",
  capture: "gemm",
  check: (n) => !n.inputs[3] || "it already adds a residual",
  label: "mhafuse.FusedGemm",
});

/** `inner`, or a Reshape of it (linear-bias's, back to the layer's rank). */
const reshaped = (inner: Pattern): Pattern =>
  oneOf("a GEMM, or a Reshape of it", op("Reshape", [inner, any("shape")], { capture: "reshape" }), inner);

const approximateIs = (want: "none" | "tanh") => (node: Node) => {
  const a = node.attrs.approximate;
  const value = a === undefined ? "none" : a.type === "string" ? a.value : "?";
  return value === want || `approximate = ${value}`;
};

const gemmOutput = reshaped(gemm);

const erfGeluOfGemm: Pattern = oneOf(
  "GELU (erf form) of a Gemm",
  op("Gelu", [gemmOutput], { domain: "com.microsoft", capture: "act", label: "com.microsoft.Gelu" }),
  op("Gelu", [gemmOutput], { capture: "act", check: approximateIs("none"), label: "Gelu" }),
);

const tanhGeluOfGemm: Pattern = oneOf(
  "GELU (tanh form) of a Gemm",
  op("FastGelu", [gemmOutput], { domain: "com.microsoft", capture: "act", label: "com.microsoft.FastGelu" }),
  op("Gelu", [gemmOutput], { capture: "act", check: approximateIs("tanh"), label: "Gelu (tanh)" }),
);

const residualOfGemm: Pattern = op(
  "Add",
  [
    any("residual"),
    oneOf(
      "a GEMM or its GELU",
      erfGeluOfGemm,
      tanhGeluOfGemm,
      reshaped(oneOf("a GEMM", gemm, unresidualFused)),
    ),
  ],
  { commutative: true, capture: "add", label: "residual Add" },
);

interface GemmEpilogueContext {
  view: GraphView;
  factory: NodeFactory;
}

/** FusedGemm's activation attribute for the matched GELU node (undefined: none matched). */
function activationOf(act: Node | undefined): "Gelu" | "FastGelu" | undefined {
  if (!act) return undefined;
  if (act.opType === "FastGelu") return "FastGelu";
  const a = act.attrs.approximate;
  return a?.type === "string" && a.value === "tanh" ? "FastGelu" : "Gelu";
}

/**
 * Equal shapes as far as inference knows, dim by dim: equal numbers, the same symbolic name, or unknown (null) on
 * both sides. Unknown dims must count: exports leave the sequence dim unknown after a Reshape (the generated
 * BERT's [batch, null, E]), and a residual Add there is same-shape in every real model. Were it a broadcast at
 * run time after all, FusedGemm's contract refuses the residual with a typed OpError naming the fusion — never
 * a wrong number (test/fusion-gemm-epilogues.test.ts).
 */
const sameShape = (a: readonly Dim[] | undefined, b: readonly Dim[] | undefined): boolean =>
  !!a && !!b && a.length === b.length && a.every((d, i) => d !== undefined && d === b[i]);

function rewrite(m: Match, ctx: GemmEpilogueContext): Replacement | { decline: string } {
  const { view, factory } = ctx;
  const gemmNode = m.nodes.get("gemm")!;
  const reshape = m.nodes.get("reshape");
  const act = m.nodes.get("act");
  const add = m.nodes.get("add");
  const chain = [gemmNode, reshape, act].filter((n): n is Node => !!n);
  // Every value the fused op no longer produces must be read by the next node of the chain alone.
  for (const n of add ? chain : chain.slice(0, -1)) {
    const out = n.outputs[0]!;
    if (view.graphOutputs.has(out)) return { decline: `'${n.name}' output '${out}' is a graph output` };
    if (view.useCount(out) !== 1) return { decline: `'${n.name}' output '${out}' is read elsewhere` };
  }
  const gemmType = view.typeOf(gemmNode.outputs[0]!);
  const dtype = gemmType?.dtype;
  if (!dtype || !FLOAT_TYPES.includes(dtype))
    return { decline: `Gemm output is ${dtype ?? "of unknown type"}` };
  const attrs: Record<string, Attribute> = { ...gemmNode.attrs };
  const inputs = [...gemmNode.inputs];
  const activation = activationOf(act);
  if (activation) attrs.activation = { type: "string", value: activation };
  // FastGelu(y, bias) = FastGelu(y + bias): the bias row is the Gemm's C when it has none.
  const actBias = act?.opType === "FastGelu" ? act.inputs[1] : undefined;
  if (actBias) {
    if (inputs[2]) return { decline: "FastGelu adds a bias to a Gemm that has one (two roundings)" };
    const width = gemmType?.shape?.[1];
    const biasShape = view.typeOf(actBias)?.shape;
    if (typeof width !== "number" || !biasShape || biasShape.length !== 1 || biasShape[0] !== width)
      return { decline: "FastGelu's bias is not a [N] row" };
    inputs[2] = actBias;
    attrs.beta = { type: "float", value: 1 };
  }
  let residual: string | undefined;
  if (add) {
    if (dtype !== "float32")
      return { decline: `a residual Add of ${dtype} (it rounds the GEMM's result first)` };
    residual = m.values.get("residual")!;
    const y = chain[chain.length - 1]!.outputs[0]!;
    const rShape = view.typeOf(residual)?.shape;
    if (!sameShape(rShape, view.typeOf(y)?.shape) || !sameShape(rShape, view.typeOf(add.outputs[0]!)?.shape))
      return {
        decline: "the Add broadcasts (or its shapes are unknown): not a residual of the GEMM's shape",
      };
    if (reshape) {
      // The residual as the GEMM's [M, N] (a view): N is the Gemm output's width.
      const width = gemmType?.shape?.[1];
      if (typeof width !== "number") return { decline: "the Gemm's output width is unknown" };
      residual = factory.add("Reshape", [residual, factory.int64s([-1, width])]);
    }
  }
  while (inputs.length < 3) inputs.push("");
  if (residual) inputs[3] = residual;
  while (inputs.length > 2 && !inputs[inputs.length - 1]) inputs.pop();
  const result = (add ?? chain[chain.length - 1]!).outputs[0]!;
  const fused = factory.add("FusedGemm", inputs, attrs, {
    domain: "mhafuse",
    output: reshape ? undefined : result,
  });
  if (reshape)
    factory.add("Reshape", [fused, ...reshape.inputs.slice(1)], { ...reshape.attrs }, { output: result });
  return { add: [], remove: add ? [add, ...chain] : chain };
}

const rules: RuleSet<GemmEpilogueContext> = [
  { name: "gemm residual", pattern: residualOfGemm, rewrite },
  { name: "gemm gelu", pattern: erfGeluOfGemm, rewrite },
  { name: "gemm gelu tanh", pattern: tanhGeluOfGemm, rewrite },
];

/** One outcome per candidate root that matched: fused, or the reason it was not. */
export function fuseGemmActivationReport(graph: Graph): FusionOutcome[] {
  const inferred = inferGraphTypes(graph);
  const view = new GraphView(graph, inferred.types, inferred.constants);
  // Residual Adds first: an Add of a GELU of a Gemm takes all three before the GELU rule would take two.
  const isAdd = (n: Node) => n.opType === "Add" && n.domain === "";
  const outcomes = runRewritePass(graph, view, {
    rules,
    prefix: "gemmact",
    context: (_, factory) => ({ view, factory }),
    roots: [...graph.nodes.filter(isAdd), ...graph.nodes.filter((n) => !isAdd(n))],
  });
  // A GELU fused into its residual Add's FusedGemm is no candidate of its own (not a declined one).
  const fusedAway = new Set(outcomes.flatMap((o) => (o.applied ? o.replacement!.remove : [])));
  return fusionOutcomes(
    outcomes.filter((o) => o.applied || !fusedAway.has(o.node)),
    "overlaps another fusion",
  );
}

/** Fuses every Gemm epilogue (GELU, residual Add) it can into mhafuse.FusedGemm; returns how many. */
export function fuseGemmActivation(graph: Graph): number {
  return fuseGemmActivationReport(graph).filter((o) => o.fused).length;
}
