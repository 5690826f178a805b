/**
 * float16 → float32 types for a float16 model, so that a runtime whose kernels take float32 (the webgpu
 * backend: its fp16 mode stores values as f16 but types them float32) runs it: the inverse of to-float16.ts.
 *
 * Every float16 initializer, Constant / ConstantOfShape tensor and value type becomes float32 — exactly, since
 * float32 holds every half value — and every Cast (or dtype attribute) to float16 becomes one to float32. A
 * Cast that then only moves between float16 and float32 is an identity and is removed, so a `keepIoTypes`
 * model's edge Casts disappear and a blocked op's Casts too. The integer and bool parts are untouched (Casts
 * to and from them keep their types), and so are the values: to-float16's clamped ±65504 mask fills stay.
 *
 * The result computes what the float16 model computes, with float32 intermediate rounding in place of
 * float16's; the caller picks where values are rounded to half (webgpu fp16 storage) and converts float16
 * feeds and outputs at its edge (the graph's float16 inputs and outputs are float32 here).
 */
import type { DType } from "../ir/dtype.js";
import type { Attribute, Graph, Node, ValueInfo } from "../ir/graph.js";
import { cloneGraph, namesReadBySubgraphs } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { inferGraphTypes } from "./infer-types.js";

const FLOAT = 1;
const FLOAT16 = 10;

/** Ops whose `dtype` attribute names the output element type (ai.onnx). */
const DTYPE_ATTR_OPS = new Set([
  "EyeLike",
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Bernoulli",
]);

/**
 * Whether the model carries float16 data — initializers, graph inputs or outputs, or constant tensors — so that
 * running it lifted (float32 types, f16 storage) is running that model. A float32 model whose only float16 is a
 * Cast (a deliberate rounding to half, say) is not one: lifting would drop its Casts and change its numbers.
 */
export function isFloat16Model(graph: Graph): boolean {
  if ([...graph.initializers.values()].some((t) => t.type === "float16")) return true;
  if ([...graph.inputs, ...graph.outputs].some((v) => v.dtype === "float16")) return true;
  return graph.nodes.some((n) =>
    Object.values(n.attrs).some(
      (a) =>
        (a.type === "tensor" && a.value.type === "float16") ||
        (a.type === "tensors" && a.value.some((t) => t.type === "float16")),
    ),
  );
}

/** Whether the graph holds float16 anywhere: initializers, its inputs or outputs, node tensors, or Cast/dtype
 * attributes naming float16. */
export function hasFloat16(graph: Graph): boolean {
  return (
    isFloat16Model(graph) ||
    graph.nodes.some((n) =>
      Object.values(n.attrs).some(
        (a) =>
          a.type === "int" && a.value === FLOAT16 && (n.opType === "Cast" || DTYPE_ATTR_OPS.has(n.opType)),
      ),
    )
  );
}

/**
 * Whether the model's weights are float16: it has float initializers and all of them are float16 (a
 * to-float16 model, with or without kept I/O types). Mixed models (a few float16 tensors in a float32
 * model) are not.
 */
export function hasFloat16Weights(graph: Graph): boolean {
  const floats = [...graph.initializers.values()].filter((t) => t.type === "float16" || t.type === "float32");
  return floats.length > 0 && floats.every((t) => t.type === "float16");
}

/** A float16 tensor as float32 (exact); any other tensor as is. */
export function tensorToFloat32(t: Tensor): Tensor {
  return t.type === "float16" ? new Tensor("float32", Float32Array.from(t.toFloat64()), t.dims) : t;
}

const lift = (t: DType | undefined): DType | undefined => (t === "float16" ? "float32" : t);
const liftInfo = (v: ValueInfo): ValueInfo => (v.dtype === "float16" ? { ...v, dtype: "float32" } : v);

function liftAttr(node: Node, name: string, a: Attribute): Attribute {
  if (a.type === "tensor") return { type: "tensor", value: tensorToFloat32(a.value) };
  if (a.type === "tensors") return { type: "tensors", value: a.value.map(tensorToFloat32) };
  if (a.type === "graph") return { type: "graph", value: liftBody(cloneGraph(a.value)) };
  const typed =
    node.domain === "" &&
    ((node.opType === "Cast" && name === "to") || (DTYPE_ATTR_OPS.has(node.opType) && name === "dtype"));
  if (typed && a.type === "int" && a.value === FLOAT16) return { type: "int", value: FLOAT };
  return a;
}

/** Lifts initializers, node attributes and value types in place (`graph` is a copy). */
function liftBody(graph: Graph): Graph {
  for (const [name, t] of graph.initializers) graph.initializers.set(name, tensorToFloat32(t));
  for (const node of graph.nodes)
    for (const [name, a] of Object.entries(node.attrs)) node.attrs[name] = liftAttr(node, name, a);
  for (const [name, v] of graph.valueInfo) graph.valueInfo.set(name, liftInfo(v));
  graph.inputs = graph.inputs.map(liftInfo);
  graph.outputs = graph.outputs.map(liftInfo);
  return graph;
}

/**
 * Removes the Casts to float32 whose input was float16 or float32 in the float16 graph (`typeOf`): identities
 * once lifted. Readers of a removed Cast's output read its input; where the output is a graph output (or a
 * subgraph reads it), the input's producer writes that name instead, unless the input is a graph input,
 * an initializer or itself such a name — then the Cast stays (an alias on the webgpu device).
 */
function dropFloatCasts(graph: Graph, typeOf: (v: string) => DType | undefined): void {
  // Graph outputs keep their names, and so do values a subgraph reads from this scope (never renamed there).
  const fixed = new Set([...graph.outputs.map((o) => o.name), ...namesReadBySubgraphs(graph)]);
  const produced = new Set(graph.nodes.flatMap((n) => n.outputs.filter((o) => o)));
  const toInput = new Map<string, string>();
  const toOutput = new Map<string, string>();
  const resolve = (v: string) => {
    let r = v;
    while (toInput.has(r)) r = toInput.get(r)!;
    return r;
  };
  graph.nodes = graph.nodes.filter((node) => {
    const out = node.outputs[0];
    const input = node.inputs[0] ? resolve(node.inputs[0]) : undefined;
    const from = node.inputs[0] ? lift(typeOf(node.inputs[0])) : undefined;
    if (
      node.opType !== "Cast" ||
      node.domain !== "" ||
      from !== "float32" ||
      node.attrs.to?.type !== "int" ||
      node.attrs.to.value !== FLOAT ||
      !out ||
      !input
    )
      return true;
    if (!fixed.has(out)) toInput.set(out, input);
    else if (produced.has(input) && !fixed.has(input) && !toOutput.has(input)) toOutput.set(input, out);
    else return true;
    return false;
  });
  if (toInput.size === 0 && toOutput.size === 0) return;
  const rename = (v: string) => (v ? (toOutput.get(resolve(v)) ?? resolve(v)) : v);
  for (const node of graph.nodes) {
    node.inputs = node.inputs.map(rename);
    node.outputs = node.outputs.map((v) => (v ? (toOutput.get(v) ?? v) : v));
  }
}

/** The float32-typed version of a float16 graph (a new graph; `graph` is not modified). */
export function liftFloat16(graph: Graph): Graph {
  // Value types of the float16 graph, for the Casts; values the inference cannot type keep their Casts.
  const { types } = inferGraphTypes(graph);
  const typeOf = (v: string) => graph.initializers.get(v)?.type ?? types.get(v)?.dtype;
  const out = liftBody(cloneGraph(graph));
  dropFloatCasts(out, typeOf);
  return out;
}
