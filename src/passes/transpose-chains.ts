import type { Graph, Node } from "../ir/graph.js";
import { consumers, namesReadBySubgraphs, producers } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";

/** A Transpose's perm, or undefined where the attribute is missing (axes reversed: the rank decides). */
function permOf(node: Node): number[] | undefined {
  const a = node.attrs.perm;
  return a?.type === "ints" ? a.value.map(Number) : undefined;
}

/**
 * Transpose(Transpose(x, p1), p2) → Transpose(x, p1∘p2), and where the two cancel, the readers of the outer
 * one read x itself. Qwen3's per-head Q/K RMSNorms leave such pairs around the fused attention ([0,2,1,3]
 * twice: into the model's BNSH and back to the BSNH the fused op reads). Then Transpose(Slice(Transpose(x,
 * p), …), p⁻¹) → Slice(x, …) on the axes p maps them to (sinkTransposesThroughSlices: GPT-NeoX's Q|K|V split).
 * The inner Transposes go with the dead nodes when nothing else reads them. Returns how many outer Transposes
 * were rewritten.
 */
export function composeTransposes(graph: Graph): number {
  return composePairs(graph) + sinkTransposesThroughSlices(graph);
}

const isIdentity = (perm: readonly number[]) => perm.every((a, i) => a === i);

function composePairs(graph: Graph): number {
  const producer = producers(graph);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const nested = namesReadBySubgraphs(graph);
  const rename = new Map<string, string>();
  let changed = 0;
  for (const node of graph.nodes) {
    if (node.opType !== "Transpose" || node.domain !== "") continue;
    const inner = producer.get(node.inputs[0] ?? "");
    if (inner?.opType !== "Transpose" || inner.domain !== "") continue;
    const p1 = permOf(inner);
    const p2 = permOf(node);
    if (!p1 || !p2 || p1.length !== p2.length) continue;
    // Output axis i of the outer Transpose is axis p2[i] of the inner one's output, axis p1[p2[i]] of x.
    const perm = p2.map((a) => p1[a]!);
    const x = inner.inputs[0]!;
    const out = node.outputs[0]!;
    if (isIdentity(perm)) {
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

/**
 * Transpose(Slice(Transpose(x, p), starts, ends, axes, steps), q) with q the inverse of p and the Slice read by
 * that Transpose alone → Slice(x, starts, ends, p[axes], steps), written under the outer Transpose's output name.
 * GPT-NeoX's head-interleaved QKV projection is reshaped to [B, S, N, 3H], transposed to BNSH, split into Q, K
 * and V along the last axis and each transposed back to the BSNH the fused op reads: three Slices of [B, S, N,
 * 3H] instead. Axes must be constant (or absent: the first starts.length axes).
 */
function sinkTransposesThroughSlices(graph: Graph): number {
  const producer = producers(graph);
  const readers = consumers(graph);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const nested = namesReadBySubgraphs(graph);
  const removed = new Set<Node>();
  let changed = 0;
  for (const outer of graph.nodes) {
    if (outer.opType !== "Transpose" || outer.domain !== "") continue;
    const slice = producer.get(outer.inputs[0] ?? "");
    if (slice?.opType !== "Slice" || slice.domain !== "") continue;
    const sliced = slice.outputs[0]!;
    if (outputs.has(sliced) || nested.has(sliced) || (readers.get(sliced) ?? []).length !== 1) continue;
    const inner = producer.get(slice.inputs[0] ?? "");
    // removed: an outer Transpose rewritten away this pass (its output is now the Slice's).
    if (inner?.opType !== "Transpose" || inner.domain !== "" || removed.has(inner)) continue;
    const p = permOf(inner);
    const q = permOf(outer);
    if (!p || !q || p.length !== q.length || !isIdentity(q.map((a) => p[a]!))) continue;
    const rank = p.length;
    const starts = graph.initializers.get(slice.inputs[1] ?? "");
    const axesName = slice.inputs[3];
    const axesInit = axesName ? graph.initializers.get(axesName) : undefined;
    if (axesName && !axesInit) continue;
    const axes = axesInit ? axesInit.toNumbers() : starts ? starts.toNumbers().map((_, i) => i) : undefined;
    if (!axes || axes.some((a) => a < -rank || a >= rank)) continue;
    // Axis a of the transposed tensor is axis p[a] of x.
    const mapped = axes.map((a) => p[a < 0 ? a + rank : a]!);
    const name = `${outer.name}/sunk_axes`;
    if (graph.initializers.has(name) || producer.has(name)) continue;
    // Slice's starts, ends, axes and steps share one index type (Tind): the axes' own, else the starts'.
    const tind = (axesInit ?? starts)?.type === "int32" ? "int32" : "int64";
    graph.initializers.set(name, new Tensor(tind, mapped, [mapped.length]));
    slice.inputs = [
      inner.inputs[0]!,
      slice.inputs[1] ?? "",
      slice.inputs[2] ?? "",
      name,
      ...slice.inputs.slice(4),
    ];
    slice.outputs = [outer.outputs[0]!];
    // The maps follow the rewrite, so a later match sees the Slice as the producer of the outer output.
    producer.delete(sliced);
    producer.set(outer.outputs[0]!, slice);
    readers.set(outer.outputs[0]!, readers.get(outer.outputs[0]!) ?? []);
    removed.add(outer);
    changed++;
  }
  if (removed.size > 0) graph.nodes = graph.nodes.filter((n) => !removed.has(n));
  return changed;
}
