import type { Graph } from "../ir/graph.js";
import { cloneGraph } from "../ir/graph.js";

/** A graph pass edits the graph in place and returns what it wants counted in the stats. */
export interface Pass<R = unknown> {
  name: string;
  run(graph: Graph): { changed: number; result?: R };
}

export interface PassStats {
  pass: string;
  changed: number;
  nodesAfter: number;
}

/**
 * Runs passes in order on a copy of the graph (the caller's graph is never modified) and collects
 * per-pass counts. Results a pass wants to hand back (the fusion report) are kept by pass name.
 */
export function runPasses(
  graph: Graph,
  passes: readonly Pass[],
): { graph: Graph; stats: PassStats[]; results: Map<string, unknown> } {
  const work = cloneGraph(graph);
  const stats: PassStats[] = [];
  const results = new Map<string, unknown>();
  for (const p of passes) {
    const { changed, result } = p.run(work);
    stats.push({ pass: p.name, changed, nodesAfter: work.nodes.length });
    if (result !== undefined) results.set(p.name, result);
  }
  return { graph: work, stats, results };
}
