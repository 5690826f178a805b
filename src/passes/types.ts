import type { Graph } from "../ir/graph.js";
import { inferGraphTypes, type TypeInference } from "./infer-types.js";

export type { TypeInference };

/** Types and statically known values of a graph (the engine's shape inference; never throws on odd ops). */
export function analyzeGraph(graph: Graph): TypeInference {
  return inferGraphTypes(graph);
}
