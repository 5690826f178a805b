import { assert } from "../errors.js";
import type { Attribute, Graph, Node } from "../ir/graph.js";
import { topologicalOrder } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import type { Replacement } from "./pattern.js";

/**
 * Applies replacements found by matching (match first, then apply): removes the listed nodes, adds the
 * new ones and restores a topological order. Values are names, so a new node that produces a removed
 * node's output name takes its place for every reader.
 */
export function applyReplacements(graph: Graph, replacements: readonly Replacement[]): void {
  const removed = new Set<Node>();
  for (const r of replacements) for (const n of r.remove) removed.add(n);
  const nodes = graph.nodes.filter((n) => !removed.has(n));
  for (const r of replacements) {
    nodes.push(...r.add);
    // A file must import every domain its nodes use; new fused ops bring theirs (version 1).
    for (const n of r.add) if (n.domain && !graph.opsets.has(n.domain)) graph.opsets.set(n.domain, 1);
    for (const [name, t] of r.initializers ?? []) graph.initializers.set(name, t);
  }
  graph.nodes = nodes;
  const produced = new Set<string>();
  for (const n of nodes) {
    for (const o of n.outputs) {
      assert(!o || !produced.has(o), `rewrite left two producers of '${o}'`);
      produced.add(o);
    }
  }
  graph.nodes = topologicalOrder(graph);
}

/**
 * Makes fresh node and value names under a prefix so rewrites never collide with the graph's names,
 * and collects the nodes and constants of one replacement.
 */
export class NodeFactory {
  readonly nodes: Node[] = [];
  readonly initializers: [string, Tensor][] = [];
  private counter = 0;
  private readonly used: Set<string>;

  constructor(
    graph: Graph,
    private readonly prefix: string,
  ) {
    this.used = new Set([...graph.initializers.keys(), ...graph.inputs.map((i) => i.name)]);
    for (const n of graph.nodes) {
      this.used.add(n.name);
      for (const o of n.outputs) this.used.add(o);
    }
  }

  fresh(what: string): string {
    for (;;) {
      const name = `${this.prefix}/${what}_${this.counter++}`;
      if (!this.used.has(name) && !this.used.has(`${name}_out`)) {
        this.used.add(name);
        return name;
      }
    }
  }

  /**
   * Adds a node; returns its first output name (`output` names it explicitly, e.g. to replace a value;
   * `more` are further outputs, named by the caller).
   */
  add(
    opType: string,
    inputs: string[],
    attrs: Record<string, Attribute> = {},
    opts: { domain?: string; output?: string; more?: string[] } = {},
  ): string {
    const name = this.fresh(opType);
    const out = opts.output ?? `${name}_out`;
    const outputs = [out, ...(opts.more ?? [])];
    this.nodes.push({ name, opType, domain: opts.domain ?? "", inputs, outputs, attrs });
    return out;
  }

  constant(t: Tensor, what = "const"): string {
    const name = this.fresh(what);
    this.initializers.push([name, t]);
    return name;
  }

  int64s(values: number[]): string {
    return this.constant(new Tensor("int64", values, [values.length]), "shape");
  }
}

export const intAttr = (value: number): Attribute => ({ type: "int", value });
export const intsAttr = (value: number[]): Attribute => ({ type: "ints", value });
export const floatAttr = (value: number): Attribute => ({ type: "float", value });
