import type { Graph, Node } from "../../ir/graph.js";
import { GraphView } from "../graph-view.js";
import { runRewritePass } from "../rewrite-driver.js";
import { analyzeGraph } from "../types.js";
import type { BlockAnalysis } from "./analyze.js";
import type { AttentionReport } from "./report.js";
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
  const imported = graph.nodes.flatMap((node) => importedFusedBlock(node, view) ?? []);
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
    } else {
      entry.reason = outcome.replacement ? "overlaps another fused block" : outcome.reason;
    }
  }
  report.push(...imported);
  return report;
}

/** The report's rotary line: what was folded (Q/K, rotary dim of head size), else why it was kept. */
function describeRotary(r: BlockAnalysis["rotary"]): string | undefined {
  if (!r) return undefined;
  if (r.kept.length) return `kept as graph nodes: ${r.kept.join("; ")}`;
  const dims = [...new Set(r.folded.map((x) => `${x.rotaryDim} of ${x.headSize}`))].join(", ");
  return `folded into com.microsoft.RotaryEmbedding on ${r.folded.map((x) => x.what).join(", ")}, rotary dim ${dims}`;
}

/** Attention that arrives already fused (com.microsoft Attention/MultiHeadAttention, ONNX Attention-23). */
const IMPORTED = new Map([
  ["com.microsoft::Attention", "unidirectional"],
  ["com.microsoft::MultiHeadAttention", "unidirectional"],
  ["::Attention", "is_causal"],
]);

/**
 * Report entry for an attention op the model already contains. The engine runs these on the same core
 * as mhafuse.Attention, so they count as fused blocks; nothing is rewritten.
 */
function importedFusedBlock(node: Node, view: GraphView): AttentionReport | undefined {
  const causalAttr = IMPORTED.get(`${node.domain}::${node.opType}`);
  if (causalAttr === undefined) return undefined;
  const flag = node.attrs[causalAttr];
  const causal = flag?.type === "int" && flag.value !== 0;
  const seqOf = (v: string | undefined) => {
    const shape = v ? view.typeOf(v)?.shape : undefined;
    return shape ? shape[shape.length === 4 ? 2 : 1] : undefined;
  };
  // Only MultiHeadAttention and ONNX Attention take a separate key input; contrib Attention is self-attention.
  const key = node.opType === "MultiHeadAttention" || node.domain === "" ? node.inputs[1] : undefined;
  const qs = seqOf(node.inputs[0]);
  const ks = seqOf(key);
  const cross = ks !== undefined && ks !== null && qs !== undefined && qs !== null && ks !== qs;
  const heads = node.attrs.num_heads ?? node.attrs.q_num_heads;
  return {
    id: node.name,
    kind: causal ? "causal" : cross ? "cross" : "self",
    traits: [],
    fused: true,
    path: "attention",
    nodes: [node.name],
    output: node.outputs[0],
    numHeads: heads?.type === "int" ? heads.value : undefined,
  };
}
