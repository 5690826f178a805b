/**
 * The seam between the engine and a backend (CPU today, WebGPU next). The engine plans — order, value
 * lifetimes — once per graph; a backend prepares the graph once (packs or uploads weights, compiles what
 * needs compiling) and then runs it any number of times, asynchronously. Host tensors go in and come out
 * of `PreparedGraph.run` only: every host↔device transfer happens at that edge and nowhere else.
 */
import type { Graph, Node } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";

/** The engine's plan of a graph: what runs when, and when each intermediate value dies. */
export interface ExecutionPlan {
  readonly order: readonly Node[];
  /** Per step of `order`: the values whose last reader it is (their buffers may be reused after it). */
  readonly releaseAfter: readonly (readonly string[])[];
}

export interface RunOptions {
  /** Keep every intermediate value; `fetches` may then name any value of the graph. */
  keepIntermediates?: boolean;
  /** Device backends: time every kernel of this run (timestamp queries); the prepared graph keeps the profile. */
  profile?: boolean;
}

export interface PreparedGraph {
  /**
   * Runs the graph on host `feeds` and resolves with the host tensors named in `fetches`. Concurrent calls
   * are allowed and independent.
   */
  run(
    feeds: Readonly<Record<string, Tensor>>,
    fetches: readonly string[],
    options?: RunOptions,
  ): Promise<Record<string, Tensor>>;
}

export interface Backend {
  readonly name: string;
  prepare(graph: Graph, plan: ExecutionPlan): Promise<PreparedGraph>;
  /** Frees what the backend holds (threads, buffers, device objects); later runs fail or restart lazily. */
  dispose(): Promise<void>;
}
