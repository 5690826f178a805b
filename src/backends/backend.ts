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

/**
 * Device backends that replay recorded runs (webgpu): what the last run did — "replayed" a plan; ran node by
 * node and kept its recording as a plan ("captured"), remembered it until an equal one comes ("recorded"),
 * or could not keep it ("refused", with the reason); a profiled or verify run ("bypassed"); replay turned off
 * ("off").
 */
export interface ReplayStatus {
  last: "replayed" | "captured" | "recorded" | "refused" | "bypassed" | "off";
  /** Why the last run did not replay, or why its recording cannot be replayed. */
  reason?: string;
  /** Plans alive for this prepared graph. */
  plans: number;
  /** Runs replayed so far. */
  replayed: number;
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
  /** Replaying backends: what the last run did (see ReplayStatus). */
  replayStatus?(): ReplayStatus;
  /** Frees what the graph keeps between runs (replay plans' buffers); it may still run afterwards. */
  release?(): Promise<void>;
}

export interface Backend {
  readonly name: string;
  prepare(graph: Graph, plan: ExecutionPlan): Promise<PreparedGraph>;
  /** Frees what the backend holds (threads, buffers, device objects); later runs fail or restart lazily. */
  dispose(): Promise<void>;
}
