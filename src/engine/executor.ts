import type { ExecutionPlan as BackendPlan } from "../backends/backend.js";
import { type CpuCompute, cpuCompute } from "../backends/cpu/compute.js";
import { markImmutable } from "../backends/cpu/immutable.js";
import { cpuKernels } from "../backends/cpu/kernels.js";
import { cpuThreads } from "../backends/cpu/thread-pool.js";
import { OpError, runNodeGuarded } from "../errors.js";
import type { Graph, Node } from "../ir/graph.js";
import { opsetOf, topologicalOrder } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { referenceWith } from "../ops/compute.js";
import { type EvaluateOptions, gatherInputs, lastReaders } from "../ops/evaluate.js";
import { resolveOp } from "../ops/index.js";

export interface ExecuteOptions extends EvaluateOptions {
  /** The CPU primitives to run on (default: the WebAssembly/JS ones; a CpuBackend's for its native kernels). */
  compute?: CpuCompute;
}

/** Topological order plus, for each step, the values whose last reader it is (freed right after). */
export interface ExecutionPlan extends BackendPlan {
  order: Node[];
  releaseAfter: string[][];
}

export function planGraph(graph: Graph): ExecutionPlan {
  const order = topologicalOrder(graph);
  // Initializers are never written while the graph runs, so kernels may cache what they derive from them.
  for (const t of graph.initializers.values()) markImmutable(t.data);
  return { order, releaseAfter: lastReaders(graph, order) };
}

/**
 * Runs a graph synchronously on the CPU backend's kernels (the op's reference where the backend has none).
 * For tests and tools; `InferenceSession` runs the same kernels asynchronously.
 */
export function runGraph(
  graph: Graph,
  feeds: Record<string, Tensor>,
  options: ExecuteOptions = {},
  plan: ExecutionPlan = planGraph(graph),
): Map<string, Tensor> {
  const values = new Map<string, Tensor>(graph.initializers);
  for (const [k, v] of Object.entries(feeds)) values.set(k, v);
  const compute = options.compute ?? cpuCompute({ threads: cpuThreads() });
  plan.order.forEach((node, step) => {
    const inputs = gatherInputs(node, values);
    const opset = opsetOf(graph, node.domain);
    // The op's contract decides first: unknown ops and schemas older than mhafuse implements are refused.
    const op = resolveOp(node, opset);
    const kernel = cpuKernels.find(
      node,
      opset,
      inputs.map((t) => t?.type),
    );
    // Raw exceptions from a kernel become coded errors naming the node (issue 13).
    const result = runNodeGuarded(node, () =>
      kernel
        ? kernel.run({ node, opset, compute, allowAsync: false }, inputs)
        : op.run({ node, opset, compute: referenceWith(compute) }, inputs),
    );
    if (result instanceof Promise) throw new OpError(node, "kernel went asynchronous in a synchronous run");
    node.outputs.forEach((name, i) => {
      if (name && result[i]) values.set(name, result[i]!);
    });
    options.onNode?.(node, result);
    if (!options.keepIntermediates) for (const v of plan.releaseAfter[step]!) values.delete(v);
  });
  return values;
}
