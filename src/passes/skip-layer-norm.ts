import type { Dim, Graph } from "../ir/graph.js";
import { opsetOf } from "../ir/graph.js";
import { GraphView } from "./graph-view.js";
import { inferGraphTypes } from "./infer-types.js";
import { any, type Match, op, type Replacement, type RuleSet } from "./pattern.js";
import { floatAttr, type NodeFactory } from "./rewrite.js";
import { type FusionOutcome, fusionOutcomes, runRewritePass } from "./rewrite-driver.js";

/**
 * The residual connection of a transformer block, `LayerNormalization(Add(x, skip))` over the last axis, becomes
 * one com.microsoft.SkipLayerNormalization(x, skip, gamma, beta) — what onnxruntime's transformer optimizer
 * emits. One kernel reads both operands and writes the normalised rows: the sum never makes a round trip
 * through memory (on webgpu one dispatch instead of two, 24 fewer per BERT-base run) and it is formed in
 * float32 inside the kernel, also for float16 models. When the sum is read elsewhere too (pre-LN models carry
 * it on as the residual stream), it comes out of SkipLayerNormalization's fourth output,
 * input_skip_bias_sum, under its old name.
 *
 * Only where onnxruntime runs the result as well (`--target onnxruntime` passes the node through): x and skip
 * of one float type and the same shape of rank 2 or 3 (onnxruntime's SkipLayerNormalization takes
 * [tokens, hidden] or [batch, seq, hidden]), gamma (and beta) of that type, LayerNormalization's statistics
 * in float32 (stash_type 1) and its Mean / InvStdDev outputs unused.
 */

const FLOAT_TYPES = ["float32", "float16"];

const residualNorm = op(
  "LayerNormalization",
  [op("Add", [any("x"), any("skip")], { capture: "add" }), any("gamma")],
  {
    capture: "norm",
    label: "LayerNormalization(x + skip)",
  },
);

interface SkipContext {
  view: GraphView;
  factory: NodeFactory;
  opset: number;
}

/**
 * Equal shapes as far as inference knows: equal numbers or symbols, or unknown on both sides — real exports lose
 * the sequence length's name on the residual stream ([batch, ?, 64] + [batch, ?, 64]). Should such dims differ
 * at run time after all, the op broadcasts them as the Add did (an mhafuse extension of SkipLayerNormalization).
 */
const sameDims = (a: readonly Dim[], b: readonly Dim[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

function rewrite(m: Match, ctx: SkipContext): Replacement | { decline: string } {
  const { view, factory } = ctx;
  const norm = m.nodes.get("norm")!;
  const add = m.nodes.get("add")!;
  if (norm.outputs.slice(1).some((o) => o && view.useCount(o) > 0))
    return { decline: `LayerNormalization '${norm.name}' Mean / InvStdDev are read` };
  const stash = norm.attrs.stash_type;
  if (stash?.type === "int" && stash.value !== 1)
    return {
      decline: `LayerNormalization '${norm.name}' has stash_type ${stash.value}, not 1 (float32 statistics)`,
    };
  const x = m.values.get("x")!;
  const skip = m.values.get("skip")!;
  const xType = view.typeOf(x);
  const skipType = view.typeOf(skip);
  if (!xType?.shape || !skipType?.shape)
    return { decline: `shape of '${xType?.shape ? skip : x}' is unknown` };
  if (!FLOAT_TYPES.includes(xType.dtype) || skipType.dtype !== xType.dtype)
    return { decline: `x is ${xType.dtype}, skip ${skipType.dtype} (both float32 or both float16)` };
  const rank = xType.shape.length;
  if (rank !== 2 && rank !== 3) return { decline: `'${x}' has rank ${rank}, not 2 or 3` };
  if (!sameDims(xType.shape, skipType.shape))
    return { decline: `x [${xType.shape}] and skip [${skipType.shape}] differ (a broadcast Add)` };
  const axisAttr = norm.attrs.axis;
  const axis = axisAttr?.type === "int" ? axisAttr.value : -1;
  if ((axis < 0 ? axis + rank : axis) !== rank - 1)
    return { decline: `LayerNormalization '${norm.name}' axis ${axis} is not the last of rank ${rank}` };
  const hidden = xType.shape[rank - 1];
  if (typeof hidden !== "number") return { decline: `last dim of '${x}' is unknown` };
  const params = [norm.inputs[1]!, norm.inputs[2]].filter((p): p is string => !!p);
  for (const p of params) {
    const t = view.typeOf(p);
    if (t?.dtype !== xType.dtype || !t.shape || !sameDims(t.shape, [hidden]))
      return { decline: `'${p}' is ${t?.dtype ?? "?"} [${t?.shape ?? "?"}], not ${xType.dtype} [${hidden}]` };
  }
  const eps = norm.attrs.epsilon;
  const sum = add.outputs[0]!;
  // The sum leaves through input_skip_bias_sum only when something besides the norm reads it.
  const sumRead = view.graphOutputs.has(sum) || (view.readers.get(sum) ?? []).some((r) => r !== norm);
  factory.add(
    "SkipLayerNormalization",
    [x, skip, ...params],
    { epsilon: floatAttr(eps?.type === "float" ? eps.value : 1e-5) },
    {
      domain: "com.microsoft",
      output: norm.outputs[0]!,
      more: sumRead ? ["", "", sum] : [],
    },
  );
  return { add: [], remove: [add, norm] };
}

const skipRules: RuleSet<SkipContext> = [{ name: "skip layer norm", pattern: residualNorm, rewrite }];

/** One outcome per candidate root that matched: fused, or the reason it was not. */
export function fuseSkipLayerNormReport(graph: Graph): FusionOutcome[] {
  const opset = opsetOf(graph, "");
  if (opset < 17) return []; // LayerNormalization is an ONNX op from opset 17
  const inferred = inferGraphTypes(graph);
  const view = new GraphView(graph, inferred.types, inferred.constants);
  const outcomes = runRewritePass(graph, view, {
    rules: skipRules,
    prefix: "skipln",
    context: (_, factory) => ({ view, factory, opset }),
  });
  return fusionOutcomes(outcomes, "overlaps another fusion");
}

/** Fuses every Add → LayerNormalization it can; returns how many became SkipLayerNormalization. */
export function fuseSkipLayerNorm(graph: Graph): number {
  return fuseSkipLayerNormReport(graph).filter((o) => o.fused).length;
}
