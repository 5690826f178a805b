/**
 * The reference evaluator: runs a graph with every op's reference `run`, synchronously, on host tensors.
 * It is the oracle the backends are tested against, and what passes use to evaluate constants and probe
 * mask subgraphs (passes may import src/ops, never src/engine or a backend).
 */
import { OpError } from "../errors.js";
import type { Graph, Node } from "../ir/graph.js";
import { opsetOf, topologicalOrder } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { resolveOp } from "./registry.js";

export interface EvaluateOptions {
  /** Keep every intermediate value in the result (verify mode, debugging). */
  keepIntermediates?: boolean;
  /** Called after each node runs. */
  onNode?: (node: Node, outputs: Tensor[]) => void;
}

/** For each node of `order`, the values whose last reader it is (dropped right after it runs). */
export function lastReaders(graph: Graph, order: readonly Node[]): string[][] {
  const keep = new Set<string>([...graph.outputs.map((o) => o.name), ...graph.initializers.keys()]);
  const lastUse = new Map<string, number>();
  order.forEach((n, i) => {
    for (const v of n.inputs) if (v) lastUse.set(v, i);
    for (const v of n.outputs) if (v && !lastUse.has(v)) lastUse.set(v, i);
  });
  const releaseAfter: string[][] = order.map(() => []);
  for (const [v, i] of lastUse) if (!keep.has(v)) releaseAfter[i]!.push(v);
  return releaseAfter;
}

/** The inputs of `node` looked up in `values`; a missing one is an OpError naming the node and the value. */
export function gatherInputs(node: Node, values: ReadonlyMap<string, Tensor>): (Tensor | undefined)[] {
  return node.inputs.map((name) => {
    if (!name) return undefined;
    const t = values.get(name);
    if (!t) throw new OpError(node, `input '${name}' has no value (graph input not fed?)`);
    return t;
  });
}

/** Every value of the graph after a reference run (graph inputs, initializers, outputs and kept values). */
export function evaluateGraph(
  graph: Graph,
  feeds: Record<string, Tensor>,
  options: EvaluateOptions = {},
): Map<string, Tensor> {
  const order = topologicalOrder(graph);
  const releaseAfter = lastReaders(graph, order);
  const values = new Map<string, Tensor>(graph.initializers);
  for (const [k, v] of Object.entries(feeds)) values.set(k, v);
  order.forEach((node, step) => {
    const opset = opsetOf(graph, node.domain);
    const outputs = resolveOp(node, opset).run({ node, opset }, gatherInputs(node, values));
    node.outputs.forEach((name, i) => {
      if (name && outputs[i]) values.set(name, outputs[i]!);
    });
    options.onNode?.(node, outputs);
    if (!options.keepIntermediates) for (const v of releaseAfter[step]!) values.delete(v);
  });
  return values;
}
