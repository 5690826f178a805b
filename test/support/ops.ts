/**
 * Running one op: on the reference (the op's own `run`, the oracle), on the CPU backend's kernels
 * synchronously, or through any `Backend` (prepare + async run of a one-node graph: the path a session
 * takes, so a new backend is tested exactly as it will run).
 */

import type { Backend, PreparedGraph } from "../../src/backends/backend.js";
import { cpuCompute } from "../../src/backends/cpu/compute.js";
import { cpuKernels } from "../../src/backends/cpu/kernels.js";
import { planGraph } from "../../src/engine/executor.js";
import type { Attribute, Graph, Node } from "../../src/ir/graph.js";
import type { Tensor } from "../../src/ir/tensor.js";
import { referenceWith } from "../../src/ops/compute.js";
import { getOp } from "../../src/ops/index.js";

export type AttrValue = number | string | number[] | Attribute;

export function toAttr(v: AttrValue): Attribute {
  if (typeof v === "string") return { type: "string", value: v };
  if (typeof v === "number")
    return Number.isInteger(v) ? { type: "int", value: v } : { type: "float", value: v };
  if (Array.isArray(v)) return { type: "ints", value: v };
  return v;
}

export interface OpSpec {
  opType: string;
  domain?: string;
  opset?: number;
  attrs?: Record<string, AttrValue>;
  /** Number of outputs the node declares (default 1). */
  outputs?: number;
}

export function nodeOf(spec: OpSpec, inputs: readonly (Tensor | undefined)[]): Node {
  return {
    name: `test_${spec.opType}`,
    opType: spec.opType,
    domain: spec.domain ?? "",
    inputs: inputs.map((t, i) => (t ? `in${i}` : "")),
    outputs: Array.from({ length: spec.outputs ?? 1 }, (_, i) => `out${i}`),
    attrs: Object.fromEntries(Object.entries(spec.attrs ?? {}).map(([k, v]) => [k, toAttr(v)])),
  };
}

/** The op's reference run (opset 17 unless given). */
export function runOp(
  opType: string,
  inputs: (Tensor | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opset = 17,
  domain = "",
  /** Outputs the node declares (optional ones such as present_key are computed only when declared). */
  outputs?: number,
): Tensor[] {
  const node = nodeOf({ opType, domain, attrs, outputs }, inputs);
  return getOp(node).run({ node, opset }, inputs);
}

/** The CPU backend's kernel for the op, run synchronously (its reference where it has none). */
export function runOpOnCpu(spec: OpSpec, inputs: (Tensor | undefined)[]): Tensor[] {
  const node = nodeOf(spec, inputs);
  const opset = spec.opset ?? 17;
  const compute = cpuCompute({ threads: 2 });
  const kernel = cpuKernels.find(
    node,
    opset,
    inputs.map((t) => t?.type),
  );
  const out = kernel
    ? kernel.run({ node, opset, compute, allowAsync: false }, inputs)
    : getOp(node).run({ node, opset, compute: referenceWith(compute) }, inputs);
  if (out instanceof Promise) throw new Error("a synchronous kernel run returned a Promise");
  return out;
}

/** A one-node graph whose present inputs are graph inputs, prepared on `backend` and run once. */
export async function runOpOnBackend(
  backend: Backend,
  spec: OpSpec,
  inputs: (Tensor | undefined)[],
  /** Sees the prepared graph after the run (where each node ran, on a device backend). */
  inspect?: (prepared: PreparedGraph, node: Node) => void,
): Promise<Tensor[]> {
  const node = nodeOf(spec, inputs);
  const graph: Graph = {
    name: `op_${spec.opType}`,
    nodes: [node],
    inputs: inputs.flatMap((t, i) => (t ? [{ name: `in${i}`, dtype: t.type, shape: [...t.dims] }] : [])),
    outputs: node.outputs.map((name) => ({ name })),
    initializers: new Map(),
    valueInfo: new Map(),
    opsets: new Map([[node.domain, spec.opset ?? 17]]),
  };
  if (node.domain !== "") graph.opsets.set("", 17);
  const prepared = await backend.prepare(graph, planGraph(graph));
  const feeds = Object.fromEntries(inputs.flatMap((t, i) => (t ? [[`in${i}`, t]] : [])));
  const result = await prepared.run(feeds, node.outputs);
  inspect?.(prepared, node);
  return node.outputs.map((name) => result[name]!);
}
