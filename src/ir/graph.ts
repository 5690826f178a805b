import { GraphError } from "../errors.js";
import type { DType } from "./dtype.js";
import type { Tensor } from "./tensor.js";

/** A dimension: a concrete size, a symbol such as "batch", or unknown (null). */
export type Dim = number | string | null;

export interface ValueType {
  dtype: DType;
  /** undefined when the rank is unknown. */
  shape?: Dim[];
}

export interface ValueInfo extends Partial<ValueType> {
  name: string;
}

export type Attribute =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "string"; value: string }
  | { type: "ints"; value: number[] }
  | { type: "floats"; value: number[] }
  | { type: "strings"; value: string[] }
  | { type: "tensor"; value: Tensor }
  | { type: "tensors"; value: Tensor[] }
  | { type: "graph"; value: Graph };

export interface Node {
  /** Unique within a graph (the importer names anonymous nodes). */
  name: string;
  opType: string;
  /** "" is the default ONNX domain (also written "ai.onnx"). */
  domain: string;
  /** Value names; "" marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attribute>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Types known for intermediate values (from the file or from shape inference). */
  valueInfo: Map<string, ValueInfo>;
  /** domain → opset version; "" is the default domain. */
  opsets: Map<string, number>;
}

/** Model-level wrapper: the graph plus what an ONNX file carries around it. */
export interface Model {
  graph: Graph;
  irVersion: number;
  producerName: string;
  producerVersion: string;
  /** Folder of the file it was loaded from, for external data; undefined for in-memory models. */
  baseDir?: string;
  metadata: Record<string, string>;
}

export function normalizeDomain(domain: string | undefined | null): string {
  return !domain || domain === "ai.onnx" ? "" : domain;
}

export function emptyGraph(name = "graph"): Graph {
  return {
    name,
    nodes: [],
    inputs: [],
    outputs: [],
    initializers: new Map(),
    valueInfo: new Map(),
    opsets: new Map([["", 17]]),
  };
}

/** Opset version that applies to a node's domain (default domain when unspecified). */
export function opsetOf(graph: Graph, domain: string): number {
  return graph.opsets.get(normalizeDomain(domain)) ?? (domain === "" ? 17 : 1);
}

/** Map value name → node that produces it. */
export function producers(graph: Graph): Map<string, Node> {
  const m = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o) m.set(o, n);
  return m;
}

/** Map value name → nodes that read it (each node once per distinct input). */
export function consumers(graph: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of graph.nodes) {
    for (const i of new Set(n.inputs)) {
      if (!i) continue;
      let list = m.get(i);
      if (!list) m.set(i, (list = []));
      list.push(n);
    }
  }
  return m;
}

/**
 * Nodes in an order where every node follows the producers of its inputs (Kahn's algorithm, stable with
 * respect to the current order: among ready nodes the earliest goes first, kept in a binary heap so the
 * whole order costs O(n log n) — a sorted array was quadratic on wide graphs). Throws on cycles or on
 * inputs nobody provides.
 */
export function topologicalOrder(graph: Graph): Node[] {
  const nodes = graph.nodes;
  const available = new Set<string>([...graph.inputs.map((v) => v.name), ...graph.initializers.keys(), ""]);
  const prod = producers(graph);
  const waiting = new Int32Array(nodes.length);
  const readers = new Map<string, number[]>();
  const ready = new MinHeap();
  nodes.forEach((n, index) => {
    let missing = 0;
    for (const i of new Set(n.inputs)) {
      if (available.has(i)) continue;
      if (!prod.has(i))
        throw new GraphError(`graph: node '${n.name}' (${n.opType}) reads '${i}', which nothing produces`, {
          node: n.name,
          input: i,
          expected: "a graph input, initializer or node output",
        });
      missing++;
      let list = readers.get(i);
      if (!list) readers.set(i, (list = []));
      list.push(index);
    }
    waiting[index] = missing;
    if (missing === 0) ready.push(index);
  });
  const order: Node[] = [];
  while (ready.size > 0) {
    const n = nodes[ready.pop()]!;
    order.push(n);
    for (const o of n.outputs) {
      for (const r of readers.get(o) ?? []) if (--waiting[r]! === 0) ready.push(r);
    }
  }
  if (order.length !== nodes.length) {
    const done = new Set(order);
    const stuck = nodes.filter((n) => !done.has(n)).map((n) => n.name);
    throw new GraphError(`graph: cycle among nodes ${stuck.slice(0, 5).join(", ")}`, { node: stuck[0] });
  }
  return order;
}

/** A binary min-heap of non-negative integers (node positions). */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(v: number): void {
    const a = this.items;
    let i = a.push(v) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }

  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= a.length) break;
        if (c + 1 < a.length && a[c + 1]! < a[c]!) c++;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/** Deep-enough copy for passes: new arrays and maps, shared tensors (they are never mutated). */
export function cloneGraph(graph: Graph): Graph {
  return {
    name: graph.name,
    nodes: graph.nodes.map((n) => ({
      ...n,
      inputs: [...n.inputs],
      outputs: [...n.outputs],
      attrs: { ...n.attrs },
    })),
    inputs: graph.inputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : undefined })),
    outputs: graph.outputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : undefined })),
    initializers: new Map(graph.initializers),
    valueInfo: new Map(graph.valueInfo),
    opsets: new Map(graph.opsets),
  };
}

export function formatShape(shape: Dim[] | undefined): string {
  if (!shape) return "?";
  return `[${shape.map((d) => (d === null ? "?" : String(d))).join(",")}]`;
}

function formatAttr(a: Attribute): string {
  switch (a.type) {
    case "tensor":
      return `tensor<${a.value.type}${formatShape([...a.value.dims])}>`;
    case "tensors":
      return `tensors(${a.value.length})`;
    case "graph":
      return `graph(${a.value.nodes.length} nodes)`;
    case "string":
      return JSON.stringify(a.value);
    default:
      return JSON.stringify(a.value);
  }
}

/** Human-readable dump, one node per line, for `mhafuse inspect` and debugging. */
export function dumpGraph(graph: Graph): string {
  const lines: string[] = [];
  const typeOf = (name: string): string => {
    const init = graph.initializers.get(name);
    if (init) return `${init.type}${formatShape([...init.dims])}`;
    const v = graph.valueInfo.get(name) ?? graph.inputs.find((i) => i.name === name);
    return v?.dtype ? `${v.dtype}${formatShape(v.shape)}` : "";
  };
  lines.push(
    `graph ${graph.name} (opsets ${[...graph.opsets].map(([d, v]) => `${d || "ai.onnx"}:${v}`).join(", ")})`,
  );
  for (const i of graph.inputs) lines.push(`  input  ${i.name}: ${i.dtype ?? "?"}${formatShape(i.shape)}`);
  for (const o of graph.outputs) lines.push(`  output ${o.name}: ${o.dtype ?? "?"}${formatShape(o.shape)}`);
  lines.push(`  ${graph.initializers.size} initializers`);
  for (const n of graph.nodes) {
    const attrs = Object.entries(n.attrs)
      .map(([k, a]) => `${k}=${formatAttr(a)}`)
      .join(" ");
    const op = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    const outs = n.outputs.map((o) => `${o}${typeOf(o) ? `:${typeOf(o)}` : ""}`).join(", ");
    lines.push(`  ${outs} = ${op}(${n.inputs.join(", ")})${attrs ? ` {${attrs}}` : ""}  # ${n.name}`);
  }
  return lines.join("\n");
}

/** Values a subgraph reads from the enclosing scope (names it neither defines nor receives), at any depth. */
export function outerReads(graph: Graph): string[] {
  const defined = new Set<string>([...graph.inputs.map((i) => i.name), ...graph.initializers.keys()]);
  for (const n of graph.nodes) for (const o of n.outputs) defined.add(o);
  const reads: string[] = [];
  for (const n of graph.nodes) {
    for (const v of n.inputs) if (v && !defined.has(v)) reads.push(v);
    for (const a of Object.values(n.attrs)) if (a.type === "graph") reads.push(...outerReads(a.value));
  }
  for (const o of graph.outputs) if (!defined.has(o.name)) reads.push(o.name);
  return reads;
}

/**
 * Names of `graph` that the subgraphs of its nodes (If, Loop, Scan bodies) read from it: a rewrite must keep
 * these names (renaming a value would leave a subgraph reading a name nothing produces).
 */
export function namesReadBySubgraphs(graph: Graph): Set<string> {
  const names = new Set<string>();
  for (const n of graph.nodes)
    for (const a of Object.values(n.attrs))
      if (a.type === "graph") for (const v of outerReads(a.value)) names.add(v);
  return names;
}
