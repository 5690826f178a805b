import type { Graph, Node } from "../ir/graph.js";
import { producers } from "../ir/graph.js";

/** A Transpose's perm, or undefined where the attribute is missing (axes reversed: the rank decides). */
function permOf(node: Node): number[] | undefined {
  const a = node.attrs.perm;
  return a?.type === "ints" ? a.value.map(Number) : undefined;
}

/** Names a subgraph attribute (If, Loop, Scan bodies) reads, at any depth: those values must keep their names. */
function subgraphReads(graph: Graph, into = new Set<string>()): Set<string> {
  for (const n of graph.nodes)
    for (const a of Object.values(n.attrs))
      if (a.type === "graph") {
        for (const m of a.value.nodes) for (const v of m.inputs) if (v) into.add(v);
        for (const o of a.value.outputs) into.add(o.name);
        subgraphReads(a.value, into);
      }
  return into;
}

/**
 * Transpose(Transpose(x, p1), p2) → Transpose(x, p1∘p2), and where the two cancel, the readers of the outer
 * one read x itself. Qwen3's per-head Q/K RMSNorms leave such pairs around the fused attention ([0,2,1,3]
 * twice: into the model's BNSH and back to the BSNH the fused op reads). The inner Transpose goes with the
 * dead nodes when nothing else reads it. Returns how many outer Transposes were rewritten.
 */
export function composeTransposes(graph: Graph): number {
  const producer = producers(graph);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const nested = subgraphReads(graph);
  const rename = new Map<string, string>();
  let changed = 0;
  for (const node of graph.nodes) {
    if (node.opType !== "Transpose" || node.domain !== "") continue;
    const inner = producer.get(node.inputs[0] ?? "");
    if (!inner || inner.opType !== "Transpose" || inner.domain !== "") continue;
    const p1 = permOf(inner);
    const p2 = permOf(node);
    if (!p1 || !p2 || p1.length !== p2.length) continue;
    // Output axis i of the outer Transpose is axis p2[i] of the inner one's output, axis p1[p2[i]] of x.
    const perm = p2.map((a) => p1[a]!);
    const x = inner.inputs[0]!;
    const out = node.outputs[0]!;
    if (perm.every((a, i) => a === i)) {
      // Readers of the outer output read x; a graph output or a subgraph's read keeps the name (one Transpose).
      if (outputs.has(out) || nested.has(out)) continue;
      rename.set(out, rename.get(x) ?? x);
    } else {
      node.inputs[0] = rename.get(x) ?? x;
      node.attrs.perm = { type: "ints", value: perm };
    }
    changed++;
  }
  if (rename.size > 0) {
    for (const n of graph.nodes) n.inputs = n.inputs.map((v) => (v && rename.get(v)) ?? v);
    graph.nodes = graph.nodes.filter((n) => !(n.opType === "Transpose" && rename.has(n.outputs[0] ?? "")));
  }
  return changed;
}
