import { MhafuseError, runNodeGuarded } from "../errors.js";
import type { Graph, Node, ValueType } from "../ir/graph.js";
import { opsetOf, topologicalOrder } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { foldFits } from "../limits.js";
import { type OpDef, resolveOp } from "../ops/index.js";

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
      outs = op.inferTypes({ ...ctx, inputs, constant: (i) => constants.get(node.inputs[i] ?? "") });
      node.outputs.forEach((name, i) => {
        if (name && outs[i]) types.set(name, outs[i]!);
      });
    } catch (err) {
      problems.push({ node, message: err instanceof Error ? err.message : String(err) });
      continue;
    }
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

function isRandom(node: Node): boolean {
  return node.opType.startsWith("Random") || node.opType === "Multinomial";
}
