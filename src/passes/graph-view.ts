import type { Graph, Node, ValueType } from "../ir/graph.js";
import { consumers, producers } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";

/**
 * Read-only index over a graph for matching: who produces and who reads each value, which values are
 * statically known, and their inferred types. Built once per pass; rewrites build a new one afterwards.
 */
export class GraphView {
  readonly producer: Map<string, Node>;
  readonly readers: Map<string, Node[]>;
  readonly graphOutputs: Set<string>;
  readonly graphInputs: Set<string>;

  constructor(
    readonly graph: Graph,
    readonly types: Map<string, ValueType> = new Map(),
    readonly constants: Map<string, Tensor> = graph.initializers,
  ) {
    this.producer = producers(graph);
    this.readers = consumers(graph);
    this.graphOutputs = new Set(graph.outputs.map((o) => o.name));
    this.graphInputs = new Set(graph.inputs.map((i) => i.name));
  }

  constant(value: string): Tensor | undefined {
    return this.constants.get(value) ?? this.graph.initializers.get(value);
  }

  typeOf(value: string): ValueType | undefined {
    const init = this.graph.initializers.get(value);
    if (init) return { dtype: init.type, shape: [...init.dims] };
    return this.types.get(value);
  }

  /** Nodes that read the value, plus a pseudo-reader count of 1 when it is a graph output. */
  useCount(value: string): number {
    return (this.readers.get(value)?.length ?? 0) + (this.graphOutputs.has(value) ? 1 : 0);
  }
}
