import type { DType } from "./dtype.js";
import type { Attribute, Dim, Graph, Node } from "./graph.js";
import { emptyGraph } from "./graph.js";
import { Tensor } from "./tensor.js";

/** Plain JS attribute values; integers become `int`, other numbers `float`. Pass an Attribute to be explicit. */
export type AttrInput = number | string | number[] | string[] | Tensor | Attribute;

export interface OpOptions {
  domain?: string;
  name?: string;
  /** Number of outputs (default 1), or explicit output names. */
  outputs?: number | string[];
}

function toAttribute(v: AttrInput): Attribute {
  if (v instanceof Tensor) return { type: "tensor", value: v };
  if (typeof v === "number")
    return Number.isInteger(v) ? { type: "int", value: v } : { type: "float", value: v };
  if (typeof v === "string") return { type: "string", value: v };
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === "string")) return { type: "strings", value: v as string[] };
    const nums = v as number[];
    return nums.every(Number.isInteger) ? { type: "ints", value: nums } : { type: "floats", value: nums };
  }
  return v;
}

export const floatAttr = (value: number): Attribute => ({ type: "float", value });
export const floatsAttr = (value: number[]): Attribute => ({ type: "floats", value });

/**
 * Builds graphs in code: the test suite, the bundled demo model and the benchmarks use it to make
 * ONNX graphs with the same node patterns that exporters emit.
 */
export class GraphBuilder {
  readonly graph: Graph;
  private counter = 0;

  constructor(opts: { name?: string; opset?: number; opsets?: Record<string, number> } = {}) {
    this.graph = emptyGraph(opts.name ?? "graph");
    this.graph.opsets.set("", opts.opset ?? 17);
    for (const [d, v] of Object.entries(opts.opsets ?? {})) this.graph.opsets.set(d, v);
  }

  private fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, dtype: DType, shape: Dim[]): string {
    this.graph.inputs.push({ name, dtype, shape });
    return name;
  }

  /** Adds an initializer; returns its value name. */
  init(tensor: Tensor, name?: string): string {
    const n = name ?? this.fresh("init");
    this.graph.initializers.set(n, tensor);
    return n;
  }

  /** Scalar or 1-D constant initializer, handy for shapes, axes and scales. */
  const(dtype: DType, values: number | number[], name?: string): string {
    const arr = Array.isArray(values) ? values : [values];
    const dims = Array.isArray(values) ? [arr.length] : [];
    return this.init(new Tensor(dtype, arr, dims), name);
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrInput> = {}, opts: OpOptions = {}): string {
    return this.opN(opType, inputs, attrs, opts)[0]!;
  }

  opN(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrInput> = {},
    opts: OpOptions = {},
  ): string[] {
    const name = opts.name ?? this.fresh(opType);
    const count = typeof opts.outputs === "number" ? opts.outputs : 1;
    const outs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: count }, (_, i) => (count > 1 ? `${name}_out${i}` : `${name}_out`));
    const node: Node = {
      name,
      opType,
      domain: opts.domain ?? "",
      inputs,
      outputs: outs,
      attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, toAttribute(v)])),
    };
    if (node.domain && !this.graph.opsets.has(node.domain)) this.graph.opsets.set(node.domain, 1);
    this.graph.nodes.push(node);
    return outs;
  }

  output(name: string, dtype?: DType, shape?: Dim[]): void {
    this.graph.outputs.push({ name, dtype, shape });
  }

  build(): Graph {
    return this.graph;
  }
}
