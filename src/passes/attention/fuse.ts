import type { Graph, Node } from "../../ir/graph.js";
import { GraphView } from "../graph-view.js";
import { runRewritePass } from "../rewrite-driver.js";
import { analyzeGraph } from "../types.js";
import type { BlockAnalysis } from "./analyze.js";
import { importedBlock } from "./imported.js";
import type { AttentionReport, MaskKind } from "./report.js";
import { attentionRules, FusionContext } from "./rules.js";

/** Ops that may sit between MatMul(Q,Kᵀ) and Softmax, or between Softmax and MatMul V, in a real block. */
const NEAR_OPS = new Set([
  "Mul",
  "Div",
  "Add",
  "Sub",
  "Where",
  "Cast",
  "Identity",
  "Dropout",
  "IsNaN",
  "Transpose",
]);

/** Does the Softmax input come from a MatMul within a few elementwise hops? (Else it is not attention.) */
function fedByMatMul(value: string, view: GraphView, hops = 6): boolean {
  const node = view.producer.get(value);
  if (!node) return false;
  if (node.opType === "MatMul" || node.opType === "Einsum") return true;
  if (hops === 0 || !NEAR_OPS.has(node.opType)) return false;
  return node.inputs.some((i) => i && fedByMatMul(i, view, hops - 1));
}

/** The MatMul that applies the probabilities to V: input 0 reached from the Softmax within a few hops. */
function valueMatMul(softmax: Node, view: GraphView): Node | undefined {
  let frontier = [softmax.outputs[0]!];
  for (let hop = 0; hop < 4; hop++) {
    const next: string[] = [];
    for (const v of frontier) {
      for (const r of view.readers.get(v) ?? []) {
        if (r.opType === "MatMul" && r.inputs[0] === v) return r;
        if (r.opType !== "MatMul") next.push(...r.outputs.filter((o) => o));
      }
    }
    frontier = next;
  }
  return undefined;
}

/**
 * Finds every attention block (a Softmax between a MatMul and a MatMul), runs the attention rule set on
 * each, applies the replacements together and reports what happened to each block.
 */
export function fuseAttention(graph: Graph): AttentionReport[] {
  const { types, constants } = analyzeGraph(graph);
  const view = new GraphView(graph, types, constants);
  const ctx = new FusionContext(view, graph);
  const report: AttentionReport[] = [];
  // Every Softmax fed by a MatMul is a candidate block (and gets a report entry); the rules are rooted at
  // the MatMul that applies its probabilities to V.
  const blocks = new Map<Node, AttentionReport>();
  for (const softmax of graph.nodes) {
    if (softmax.opType !== "Softmax" || softmax.domain !== "") continue;
    if (!fedByMatMul(softmax.inputs[0]!, view)) continue;
    const pv = valueMatMul(softmax, view);
    const entry: AttentionReport = {
      id: softmax.name,
      kind: "self",
      traits: [],
      fused: false,
      origin: "subgraph",
      nodes: [softmax.name],
    };
    report.push(entry);
    if (pv) blocks.set(pv, entry);
    else {
      const readers = (view.readers.get(softmax.outputs[0]!) ?? []).map((r) => `${r.opType} '${r.name}'`);
      entry.reason = `Softmax '${softmax.name}' does not feed a MatMul with V (read by ${readers.join(", ") || "nothing"})`;
    }
  }
  // Already-fused ops of the imported graph, listed after the blocks (read before the rewrite runs).
  const imported = graph.nodes.flatMap((node) => importedBlock(node, view) ?? []);
  const outcomes = runRewritePass(graph, view, {
    rules: attentionRules,
    prefix: "mhafuse",
    context: () => ctx,
    roots: [...blocks.keys()],
  });
  for (const outcome of outcomes) {
    const entry = blocks.get(outcome.node)!;
    const pvOutput = outcome.node.outputs[0]!;
    const chosen = ctx.chosen.get(pvOutput);
    const analysis = outcome.match ? ctx.analyze(outcome.match).result : undefined;
    if (analysis && !("decline" in analysis)) {
      entry.kind = analysis.kind;
      entry.traits = analysis.traits;
      entry.nodes = analysis.nodes.map((n) => n.name);
      entry.numHeads = analysis.q.numHeads;
      entry.kvNumHeads = analysis.k.numHeads;
      entry.headSize = analysis.q.headSize;
      entry.scale = analysis.chain.scale;
      entry.output = analysis.output.value;
      const rotary = describeRotary(analysis.rotary);
      if (rotary) entry.rotary = rotary;
    } else if (outcome.match) {
      entry.nodes = outcome.match.matched.map((n) => n.name);
    }
    if (outcome.replacement && outcome.applied && chosen) {
      entry.fused = true;
      entry.path = chosen.path;
      entry.op = chosen.path === "packed-qkv" ? "mhafuse.QKVToContext" : "mhafuse.Attention";
      entry.mask = maskKind(chosen.analysis);
      entry.why =
        chosen.path === "packed-qkv"
          ? packedWhy(chosen.analysis)
          : `not the packed op: ${ctx.packedDeclined.get(pvOutput) ?? "declined"}${layoutNote(chosen.analysis)}`;
    } else {
      entry.reason = outcome.replacement ? "overlaps another fused block" : outcome.reason;
    }
  }
  report.push(...imported);
  return report;
}

/** The mask a fused block applies besides causality, from the classified bias. */
function maskKind(a: BlockAnalysis): MaskKind {
  switch (a.biasClass?.kind) {
    case undefined:
    case "causal":
      return "none";
    case "padding":
    case "causal+padding":
      return "padding";
    default:
      return "additive";
  }
}

/** Why a block took the packed op, and what became of its projection weights. */
function packedWhy(a: BlockAnalysis): string {
  const mask = a.biasClass ? "a padding mask" : "no mask";
  const weights =
    a.fusedQkv?.layout === "head-interleaved"
      ? Math.abs(a.chain.scale * Math.sqrt(a.q.headSize) - 1) < 1e-6
        ? "the projection is already head-interleaved [N,3,H] and feeds the op without repacking"
        : "the projection is already head-interleaved [N,3,H]; only its Q part is rescaled"
      : a.fusedQkv
        ? "the Q|K|V split projection is repacked to the head-interleaved [N,3,H] layout"
        : "the Q/K/V projections are packed to the head-interleaved [N,3,H] layout";
  return `self-attention over one input, equal Q/K/V heads, ${mask}: ${weights}`;
}

function layoutNote(a: BlockAnalysis): string {
  if (a.qkvLayout === "head-interleaved")
    return " (its QKV projection is head-interleaved [N,3,H], the packed op's layout, but the op cannot take this block)";
  if (a.qkvLayout === "split") return " (Q/K/V come from one Q|K|V split projection)";
  return "";
}

/** The report's rotary line: what was folded (Q/K, rotary dim of head size), else why it was kept. */
function describeRotary(r: BlockAnalysis["rotary"]): string | undefined {
  if (!r) return undefined;
  if (r.kept.length) return `kept as graph nodes: ${r.kept.join("; ")}`;
  const dims = [...new Set(r.folded.map((x) => `${x.rotaryDim} of ${x.headSize}`))].join(", ");
  return `folded into com.microsoft.RotaryEmbedding on ${r.folded.map((x) => x.what).join(", ")}, rotary dim ${dims}`;
}
