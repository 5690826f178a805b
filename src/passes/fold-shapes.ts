import type { Graph, ValueType } from "../ir/graph.js";
import { isConcrete } from "../ir/shape.js";
import { Tensor } from "../ir/tensor.js";
import { analyzeGraph } from "./types.js";

/**
 * Shape-computation folding: `Shape(x)` (and `Size(x)`) become constants when type inference knows every
 * dimension of x, so the Gather/Concat/Reshape-target arithmetic behind them folds too. Returns the
 * number of nodes replaced.
 */
export function foldShapes(graph: Graph, types: Map<string, ValueType> = analyzeGraph(graph).types): number {
  let folded = 0;
  graph.nodes = graph.nodes.filter((node) => {
    if (node.domain !== "" || (node.opType !== "Shape" && node.opType !== "Size")) return true;
    const shape = types.get(node.inputs[0] ?? "")?.shape;
    const out = node.outputs[0];
    if (!out || !isConcrete(shape) || graph.outputs.some((o) => o.name === out)) return true;
    if (node.opType === "Size") {
      graph.initializers.set(out, new Tensor("int64", [shape.reduce((a, b) => a * b, 1)], []));
    } else {
      graph.initializers.set(
        out,
        new Tensor("int64", sliceShape(shape, node.attrs), [sliceShape(shape, node.attrs).length]),
      );
    }
    folded++;
    return false;
  });
  return folded;
}

/** Shape-15 `start`/`end` attributes: a slice of the dims with clamped, possibly negative bounds. */
function sliceShape(shape: number[], attrs: Graph["nodes"][number]["attrs"]): number[] {
  const rank = shape.length;
  const bound = (name: string, fallback: number): number => {
    const a = attrs[name];
    let v = a?.type === "int" ? a.value : fallback;
    if (v < 0) v += rank;
    return Math.min(Math.max(v, 0), rank);
  };
  return shape.slice(bound("start", 0), bound("end", rank));
}
