import type { Graph } from "../ir/graph.js";
import { topologicalOrder } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { analyzeGraph } from "./types.js";

/** Folded tensors larger than this stay computed at run time (an Expand to a huge mask is not worth storing). */
export const FOLD_ELEMENT_LIMIT = 1 << 16;

/**
 * Replaces every node whose outputs are all known before any feed (all inputs constant, e.g. Constant
 * nodes, shape arithmetic on initializers) with initializers. Returns the number of nodes folded.
 */
export function foldConstants(
  graph: Graph,
  known: Map<string, Tensor> = analyzeGraph(graph).constants,
): number {
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const before = graph.nodes.length;
  graph.nodes = graph.nodes.filter((node) => {
    const present = node.outputs.filter((o) => o);
    if (present.length === 0 || node.opType.startsWith("Random")) return true;
    const values = present.map((o) => known.get(o));
    if (values.some((v) => !v || v.size > FOLD_ELEMENT_LIMIT)) return true;
    // A graph output must keep a producer node: exporters and onnxruntime expect outputs to be computed.
    if (present.some((o) => outputs.has(o))) return true;
    for (const [i, o] of present.entries()) graph.initializers.set(o, values[i]!);
    return false;
  });
  graph.nodes = topologicalOrder(graph);
  return before - graph.nodes.length;
}
