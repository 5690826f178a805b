/**
 * float32 → float16 conversion of a whole model, weights and compute, as onnxconverter-common's
 * `convert_float_to_float16` does it: float32 initializers, Constant and ConstantOfShape tensors become
 * float16 (finite values clamped to ±65504, the half range, so a `finfo(float32).min` mask fill stays finite
 * and tiny values keep their sign instead of flushing to zero); Casts to float become Casts to float16;
 * float32 graph inputs/outputs become float16 (`keepIoTypes: false`, the default) or stay float32 behind
 * Casts (`keepIoTypes: true`). Integer and bool parts are untouched. Ops in `blockOps` keep computing in
 * float32 between Casts (onnxconverter-common's op_block_list), for runtimes without a float16 kernel.
 */
import type { Attribute, Graph, Node, ValueInfo } from "../ir/graph.js";
import { cloneGraph } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { inferGraphTypes } from "./infer-types.js";

export interface Float16Options {
  /** Keep float32 graph inputs and outputs, converted at the edges by Casts (default false). */
  keepIoTypes?: boolean;
  /** Op types that stay float32, behind Casts (default none). */
  blockOps?: readonly string[];
}

const FLOAT = 1;
const FLOAT16 = 10;
const HALF_MAX = 65504;
/** onnxconverter-common's min_positive_val: smaller magnitudes are raised to it rather than flushed to 0. */
const HALF_MIN_POSITIVE = 5.96e-8;

function clampToHalf(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a > HALF_MAX) return Math.sign(x) * HALF_MAX;
  if (a < HALF_MIN_POSITIVE) return Math.sign(x) * HALF_MIN_POSITIVE;
  return x;
}

/** A float32 tensor as float16 (clamped); any other tensor as is. */
export function tensorToFloat16(t: Tensor): Tensor {
  if (t.type !== "float32") return t;
  const values = Array.from(t.toFloat64(), clampToHalf);
  return new Tensor("float16", values, t.dims);
}

function convertAttr(node: Node, name: string, a: Attribute, opts: Float16Options): Attribute {
  if (a.type === "tensor") return { type: "tensor", value: tensorToFloat16(a.value) };
  if (a.type === "tensors") return { type: "tensors", value: a.value.map(tensorToFloat16) };
  if (a.type === "graph") return { type: "graph", value: convertBody(a.value, opts) };
  if (node.opType === "Cast" && node.domain === "" && name === "to" && a.type === "int" && a.value === FLOAT)
    return { type: "int", value: FLOAT16 };
  return a;
}

/** A Constant's value_float / value_floats are float32 by definition: rewrite them as float16 tensors. */
function convertConstant(node: Node): void {
  const f = node.attrs.value_float;
  const fs = node.attrs.value_floats;
  if (f?.type === "float") {
    delete node.attrs.value_float;
    node.attrs.value = { type: "tensor", value: tensorToFloat16(new Tensor("float32", [f.value], [])) };
  } else if (fs?.type === "floats") {
    delete node.attrs.value_floats;
    const t = new Tensor("float32", fs.value, [fs.value.length]);
    node.attrs.value = { type: "tensor", value: tensorToFloat16(t) };
  }
}

const toHalfInfo = (v: ValueInfo): ValueInfo => (v.dtype === "float32" ? { ...v, dtype: "float16" } : v);

/** Converts a graph's initializers, nodes and value infos in place (the graph is already a copy). */
function convertBody(graph: Graph, opts: Float16Options): Graph {
  for (const [name, t] of graph.initializers) graph.initializers.set(name, tensorToFloat16(t));
  for (const node of graph.nodes) {
    if (node.opType === "Constant" && node.domain === "") convertConstant(node);
    for (const [name, a] of Object.entries(node.attrs)) node.attrs[name] = convertAttr(node, name, a, opts);
  }
  for (const [name, v] of graph.valueInfo) graph.valueInfo.set(name, toHalfInfo(v));
  graph.inputs = graph.inputs.map(toHalfInfo);
  graph.outputs = graph.outputs.map(toHalfInfo);
  return graph;
}

function castNode(name: string, input: string, output: string, to: number): Node {
  return {
    name,
    opType: "Cast",
    domain: "",
    inputs: [input],
    outputs: [output],
    attrs: { to: { type: "int", value: to } },
  };
}

/** keepIoTypes: float32 at the edges, a Cast after each float input and before each float output. */
function keepEdges(graph: Graph, original: Graph): void {
  const head: Node[] = [];
  const tail: Node[] = [];
  const renames = new Map<string, string>();
  original.inputs.forEach((input, i) => {
    if (input.dtype !== "float32") return;
    const half = `${input.name}/float16`;
    renames.set(input.name, half);
    graph.inputs[i] = { ...input };
    head.push(castNode(`${input.name}/to_float16`, input.name, half, FLOAT16));
  });
  for (const node of graph.nodes) node.inputs = node.inputs.map((v) => renames.get(v) ?? v);
  original.outputs.forEach((output, i) => {
    if (output.dtype !== "float32") return;
    const half = `${output.name}/float16`;
    for (const node of graph.nodes) {
      node.inputs = node.inputs.map((v) => (v === output.name ? half : v));
      node.outputs = node.outputs.map((v) => (v === output.name ? half : v));
    }
    graph.outputs[i] = { ...output };
    tail.push(castNode(`${output.name}/to_float32`, renames.get(output.name) ?? half, output.name, FLOAT));
  });
  graph.nodes = [...head, ...graph.nodes, ...tail];
}

/** blockOps: the listed ops read float32 copies of their float16 inputs and hand on float16 copies. */
function blockOps(graph: Graph, ops: ReadonlySet<string>): void {
  const { types } = inferGraphTypes(graph);
  const typeOf = (v: string) => graph.initializers.get(v)?.type ?? types.get(v)?.dtype;
  const nodes: Node[] = [];
  for (const node of graph.nodes) {
    if (!ops.has(node.opType)) {
      nodes.push(node);
      continue;
    }
    node.inputs = node.inputs.map((v, i) => {
      if (!v || typeOf(v) !== "float16") return v;
      const wide = `${node.name}/in${i}/float32`;
      nodes.push(castNode(`${node.name}/in${i}/to_float32`, v, wide, FLOAT));
      return wide;
    });
    nodes.push(node);
    node.outputs = node.outputs.map((v, i) => {
      if (!v || typeOf(v) !== "float16") return v;
      const wide = `${node.name}/out${i}/float32`;
      nodes.push(castNode(`${node.name}/out${i}/to_float16`, wide, v, FLOAT16));
      return wide;
    });
  }
  graph.nodes = nodes;
}

/** The float16 version of a float32 model (a new graph; `graph` is not modified). */
export function toFloat16(graph: Graph, opts: Float16Options = {}): Graph {
  const out = convertBody(cloneGraph(graph), opts);
  if (opts.keepIoTypes) keepEdges(out, graph);
  if (opts.blockOps?.length) blockOps(out, new Set(opts.blockOps));
  return out;
}
