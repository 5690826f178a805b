import type { Graph, Node } from "../ir/graph.js";
import { GraphView } from "./graph-view.js";
import { inferGraphTypes } from "./infer-types.js";
import { any, type Match, oneOf, op, type Pattern, type Replacement, type RuleSet } from "./pattern.js";
import type { NodeFactory } from "./rewrite.js";
import { type FusionOutcome, fusionOutcomes, runRewritePass } from "./rewrite-driver.js";

/**
 * A linear layer's GELU, `Gelu(Gemm(x, W, b))` — through the Reshape that fuse-linear-bias puts after a
 * rank > 2 layer's Gemm, GELU being elementwise — becomes one mhafuse.FusedGemm(x, W, b; activation = "Gelu")
 * (followed by that Reshape): the backends apply the GELU in the GEMM's epilogue, where the tile is still in
 * registers, instead of a pass of its own over the [tokens, 4·hidden] activations (on webgpu one dispatch
 * fewer per feed-forward block). The GELU forms fused: com.microsoft.Gelu and ONNX Gelu with approximate =
 * "none" (both the erf form). `--target onnxruntime` lowers FusedGemm back to Gemm + com.microsoft.Gelu.
 */

const FLOAT_TYPES = ["float32", "float16"];

const gemm = op("Gemm", undefined, { capture: "gemm" });
const gemmOutput: Pattern = oneOf(
  "Gemm, or a Reshape of it",
  op("Reshape", [gemm, any("shape")], { capture: "reshape" }),
  gemm,
);

const erfGelu = (node: Node) => {
  const a = node.attrs.approximate;
  return (
    !a ||
    (a.type === "string" && a.value === "none") ||
    `approximate = ${a.type === "string" ? a.value : "?"}`
  );
};

const geluOfGemm: Pattern = oneOf(
  "GELU (erf form) of a Gemm",
  op("Gelu", [gemmOutput], { domain: "com.microsoft", capture: "gelu", label: "com.microsoft.Gelu" }),
  op("Gelu", [gemmOutput], { capture: "gelu", check: erfGelu, label: "Gelu" }),
);

interface GemmActivationContext {
  view: GraphView;
  factory: NodeFactory;
}

function rewrite(m: Match, ctx: GemmActivationContext): Replacement | { decline: string } {
  const { view, factory } = ctx;
  const gelu = m.nodes.get("gelu")!;
  const gemmNode = m.nodes.get("gemm")!;
  const reshape = m.nodes.get("reshape");
  // The Gemm's result (and its reshape) must be read by the GELU alone: the fused op no longer produces it.
  for (const n of reshape ? [gemmNode, reshape] : [gemmNode]) {
    const out = n.outputs[0]!;
    if (view.graphOutputs.has(out)) return { decline: `'${n.name}' output '${out}' is a graph output` };
    if (view.useCount(out) !== 1) return { decline: `'${n.name}' output '${out}' is read elsewhere` };
  }
  const dtype = view.typeOf(gemmNode.outputs[0]!)?.dtype;
  if (!dtype || !FLOAT_TYPES.includes(dtype))
    return { decline: `Gemm output is ${dtype ?? "of unknown type"}` };
  const result = gelu.outputs[0]!;
  const fused = factory.add(
    "FusedGemm",
    [...gemmNode.inputs],
    { ...gemmNode.attrs, activation: { type: "string", value: "Gelu" } },
    { domain: "mhafuse", output: reshape ? undefined : result },
  );
  if (reshape)
    factory.add("Reshape", [fused, ...reshape.inputs.slice(1)], { ...reshape.attrs }, { output: result });
  return { add: [], remove: reshape ? [gelu, reshape, gemmNode] : [gelu, gemmNode] };
}

const rules: RuleSet<GemmActivationContext> = [{ name: "gemm gelu", pattern: geluOfGemm, rewrite }];

/** One outcome per candidate root that matched: fused, or the reason it was not. */
export function fuseGemmActivationReport(graph: Graph): FusionOutcome[] {
  const inferred = inferGraphTypes(graph);
  const view = new GraphView(graph, inferred.types, inferred.constants);
  const outcomes = runRewritePass(graph, view, {
    rules,
    prefix: "gemmact",
    context: (_, factory) => ({ view, factory }),
  });
  return fusionOutcomes(outcomes, "overlaps another fusion");
}

/** Fuses every Gemm → GELU it can into mhafuse.FusedGemm; returns how many. */
export function fuseGemmActivation(graph: Graph): number {
  return fuseGemmActivationReport(graph).filter((o) => o.fused).length;
}
