import { cloneGraph, type Graph } from "../ir/graph.js";
import { foldConstants } from "./fold-constants.js";
import { foldShapes } from "./fold-shapes.js";
import { removeDeadNodes } from "./remove-dead-nodes.js";

/**
 * The graph for one input signature (the feeds' dims, known when a session prepares it): the dims written into
 * the graph's inputs, then shape folding — every Shape of a value whose dims are now known becomes a constant —
 * the constant folding that unlocks (the Slice/Concat/Gather arithmetic of Reshape targets) and dead-node
 * removal. A BERT layer spells each linear layer as Flatten → Gemm → Reshape(Concat(Slice(Shape(x)), [N])):
 * of a 4-layer model's 132 nodes, 50 are that arithmetic, each 15–50 µs of host time per run on the CPU
 * backend whatever the batch — about 1.7 ms of a [1,128] run. Exact: only shape values are computed ahead.
 * `graph` is not modified.
 */
export function specializeShapes(
  graph: Graph,
  inputDims: Readonly<Record<string, readonly number[]>>,
): Graph {
  const out = cloneGraph(graph);
  out.inputs = out.inputs.map((i) => (inputDims[i.name] ? { ...i, shape: [...inputDims[i.name]!] } : i));
  if (foldShapes(out) > 0) {
    foldConstants(out);
    removeDeadNodes(out);
  }
  return out;
}
