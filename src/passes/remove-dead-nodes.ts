import { type Graph, outerReads } from "../ir/graph.js";

/**
 * Removes nodes none of whose outputs is read (by another node or as a graph output), repeatedly, and the
 * initializers nothing reads any more. Returns how many nodes went away.
 */
export function removeDeadNodes(graph: Graph): number {
  const live = new Set<string>(graph.outputs.map((o) => o.name));
  const kept: typeof graph.nodes = [];
  // One backwards sweep suffices in topological order: a node is live iff a later live node reads it.
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]!;
    if (!node.outputs.some((o) => o && live.has(o))) continue;
    kept.push(node);
    for (const v of node.inputs) if (v) live.add(v);
    for (const a of Object.values(node.attrs))
      if (a.type === "graph") for (const v of outerReads(a.value)) live.add(v);
  }
  const removed = graph.nodes.length - kept.length;
  graph.nodes = kept.reverse();
  for (const name of [...graph.initializers.keys()]) if (!live.has(name)) graph.initializers.delete(name);
  return removed;
}
