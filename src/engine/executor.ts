import { markImmutable } from "../backends/cpu/immutable.js";
import { OpError, runNodeGuarded } from "../errors.js";
import type { Graph, Node } from "../ir/graph.js";
import { opsetOf, topologicalOrder } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { resolveOp } from "../ops/index.js";

export interface ExecuteOptions {
  /** Keep every intermediate value in the result (verify mode, debugging). */
  keepIntermediates?: boolean;
  /** Called after each node runs. */
  onNode?: (node: Node, outputs: Tensor[]) => void;
}

/** Topological order plus, for each step, the values whose last reader it is (freed right after). */
export interface ExecutionPlan {
  order: Node[];
  releaseAfter: string[][];
}

export function planGraph(graph: Graph): ExecutionPlan {
  const order = topologicalOrder(graph);
  // Initializers are never written while the graph runs, so kernels may cache what they derive from them.
  for (const t of graph.initializers.values()) markImmutable(t.data);
  const keep = new Set<string>([...graph.outputs.map((o) => o.name), ...graph.initializers.keys()]);
  const lastUse = new Map<string, number>();
  order.forEach((n, i) => {
    for (const v of n.inputs) if (v) lastUse.set(v, i);
    for (const v of n.outputs) if (v && !lastUse.has(v)) lastUse.set(v, i);
  });
  const releaseAfter: string[][] = order.map(() => []);
  for (const [v, i] of lastUse) if (!keep.has(v)) releaseAfter[i]!.push(v);
  return { order, releaseAfter };
}

/**
 * Runs a graph on host tensors with each op's kernel. Synchronous; `InferenceSession` wraps it with feed
 * validation and the async API.
 */
export function runGraph(
  graph: Graph,
  feeds: Record<string, Tensor>,
  options: ExecuteOptions = {},
  plan: ExecutionPlan = planGraph(graph),
): Map<string, Tensor> {
  const values = new Map<string, Tensor>(graph.initializers);
  for (const [k, v] of Object.entries(feeds)) values.set(k, v);
  plan.order.forEach((node, step) => {
    const opset = opsetOf(graph, node.domain);
    const op = resolveOp(node, opset);
    const inputs = node.inputs.map((name) => {
      if (!name) return undefined;
      const t = values.get(name);
      if (!t) throw new OpError(node, `input '${name}' has no value (graph input not fed?)`);
      return t;
    });
    const outputs = runNodeGuarded(node, () => op.run({ node, opset }, inputs));
    node.outputs.forEach((name, i) => {
      if (name && outputs[i]) values.set(name, outputs[i]!);
    });
    options.onNode?.(node, outputs);
    if (!options.keepIntermediates) for (const v of plan.releaseAfter[step]!) values.delete(v);
  });
  return values;
}
