import { MhafuseError, runNodeGuarded } from "../errors.js";
import type { Graph, Node, ValueType } from "../ir/graph.js";
import { opsetOf, topologicalOrder } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { Tensor as HostTensor } from "../ir/tensor.js";
import { foldFits } from "../limits.js";
import { type OpDef, resolveOp } from "../ops/index.js";
import { fromConstant, type ShapeValue, shapeValueOf } from "./shape-values.js";

/** Values computed while inferring types are kept when small: they are shape computations worth folding. */
const CONSTANT_ELEMENT_LIMIT = 1 << 16;

export interface TypeInference {
  types: Map<string, ValueType>;
  /** Values known before any feed: initializers and outputs of nodes whose inputs are all known. */
  constants: Map<string, Tensor>;
  /** Nodes whose type rule failed or whose op is unknown, with the reason. */
  problems: { node: Node; message: string }[];
}

/**
 * Propagates dtypes and (symbolic) shapes through the graph with each op's type rule, evaluating small
 * all-constant nodes on the way so that Reshape targets and the like become known.
 */
export function inferGraphTypes(graph: Graph): TypeInference {
  const types = new Map<string, ValueType>();
  const constants = new Map<string, Tensor>(graph.initializers);
  const problems: TypeInference["problems"] = [];
  /** Small integer values known as dims but not as constants (shape arithmetic on symbolic dims). */
  const symbolic = new Map<string, ShapeValue>();
  const knownValue = (name: string | undefined): ShapeValue | undefined => {
    if (!name) return undefined;
    const c = constants.get(name);
    return c ? fromConstant(c) : symbolic.get(name);
  };
  for (const [name, t] of graph.initializers) types.set(name, { dtype: t.type, shape: [...t.dims] });
  for (const i of graph.inputs) if (i.dtype) types.set(i.name, { dtype: i.dtype, shape: i.shape });
  for (const node of topologicalOrder(graph)) {
    const ctx = { node, opset: opsetOf(graph, node.domain) };
    let op: OpDef;
    try {
      op = resolveOp(node, ctx.opset);
    } catch (err) {
      problems.push({ node, message: (err as Error).message });
      continue;
    }
    const inputs = node.inputs.map((n) => (n ? types.get(n) : undefined));
    let outs: (ValueType | undefined)[];
    try {
      outs = op.inferTypes({
        ...ctx,
        inputs,
        constant: (i) => constants.get(node.inputs[i] ?? ""),
        symbolic: (i) => knownValue(node.inputs[i])?.dims,
      });
      node.outputs.forEach((name, i) => {
        if (name && outs[i]) types.set(name, outs[i]!);
      });
    } catch (err) {
      problems.push({ node, message: err instanceof Error ? err.message : String(err) });
      continue;
    }
    trackShapeValue(node, ctx.opset, inputs, node.inputs.map(knownValue), symbolic, constants);
    const present = node.inputs.filter((n) => n);
    const allConstant = present.every((n) => constants.has(n));
    const small =
      present.reduce((acc, n) => acc + (constants.get(n)?.size ?? 0), 0) <= CONSTANT_ELEMENT_LIMIT;
    // foldFits: judged from the type rule's output sizes, before computing (a 200-byte Expand to 5e8
    // elements is not computed at load; the node stays and runs, or fails, at run time).
    if (allConstant && small && !isRandom(node) && foldFits(outs)) {
      try {
        const values = runNodeGuarded(node, () =>
          op.run(
            ctx,
            node.inputs.map((n) => (n ? constants.get(n) : undefined)),
          ),
        );
        node.outputs.forEach((name, i) => {
          const v = values[i];
          if (name && v && v.size <= CONSTANT_ELEMENT_LIMIT) {
            constants.set(name, v);
            types.set(name, { dtype: v.type, shape: [...v.dims] });
          }
        });
      } catch (err) {
        if (!(err instanceof MhafuseError)) throw err;
        problems.push({ node, message: err.message });
      }
    }
  }
  return { types, constants, problems };
}

/**
 * Records the symbolic value of a shape computation's output; one whose every element is a number becomes a
 * constant, so that ordinary folding carries on downstream (e.g. the head size read back with Shape()).
 */
function trackShapeValue(
  node: Node,
  opset: number,
  types: (ValueType | undefined)[],
  inputs: (ShapeValue | undefined)[],
  symbolic: Map<string, ShapeValue>,
  constants: Map<string, Tensor>,
): void {
  const out = node.outputs[0];
  if (!out || constants.has(out)) return;
  const attrInt = (name: string, fallback: number) => {
    const a = node.attrs[name];
    return a?.type === "int" ? a.value : fallback;
  };
  const v = shapeValueOf(node, inputs, types, attrInt, opset);
  if (!v) return;
  if (v.dims.every((d) => typeof d === "number"))
    constants.set(out, new HostTensor("int64", v.dims as number[], v.scalar ? [] : [v.dims.length]));
  else symbolic.set(out, v);
}

function isRandom(node: Node): boolean {
  return node.opType.startsWith("Random") || node.opType === "Multinomial";
}
