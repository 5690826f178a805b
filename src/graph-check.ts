/**
 * Structural validation of a graph, run once when a model is loaded (and when a session is made from an
 * in-memory graph): every value has exactly one source and the nodes can be ordered. A graph that fails
 * would otherwise run to a wrong or `undefined` result, so it is refused with MODEL_INVALID naming the
 * node and the value. Linear in the size of the graph.
 */
import { GraphError } from "./errors.js";
import type { Graph } from "./ir/graph.js";
import { topologicalOrder } from "./ir/graph.js";

export function checkGraph(graph: Graph): void {
  // Where each value comes from: a graph input, an initializer, or exactly one node output.
  const source = new Map<string, string>();
  for (const i of graph.inputs) source.set(i.name, `graph input '${i.name}'`);
  for (const name of graph.initializers.keys())
    if (!source.has(name)) source.set(name, `initializer '${name}'`);
  for (const node of graph.nodes) {
    for (const out of node.outputs) {
      if (!out) continue;
      const prev = source.get(out);
      if (prev !== undefined) {
        throw new GraphError(
          `graph: node '${node.name}' (${node.opType}) writes '${out}', which ${prev} already defines (every value must have one producer)`,
          { node: node.name, input: out, expected: "one producer per value" },
        );
      }
      source.set(out, `node '${node.name}'`);
    }
  }
  for (const o of graph.outputs) {
    if (!source.has(o.name)) {
      throw new GraphError(`graph: output '${o.name}' is not produced by any node, input or initializer`, {
        input: o.name,
        expected: "a producer for every graph output",
      });
    }
  }
  // Cycles and reads of values nobody produces.
  topologicalOrder(graph);
}
