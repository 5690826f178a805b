/**
 * The webgpu backend behind the runtime seam: one device per backend (created on first prepare, so a session
 * can be constructed synchronously), weights uploaded once per prepared graph, runs serialised on the device.
 * Creating the device throws BackendUnavailableError (code BACKEND_UNAVAILABLE) when the optional `webgpu`
 * package or an adapter is missing.
 */
import type { Graph } from "../../ir/graph.js";
import type { Backend, ExecutionPlan, PreparedGraph } from "../backend.js";
import { WebGpuContext } from "./context.js";
import type { WebGpuDeviceOptions } from "./device.js";
import { type Fallback, WebGpuPreparedGraph } from "./graph/prepared-graph.js";
import { WeightStore } from "./graph/weights.js";

export type { Fallback };

export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  #ctx: Promise<WebGpuContext> | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #weights: WeightStore[] = [];
  readonly #graphs: WebGpuPreparedGraph[] = [];

  constructor(private readonly options: WebGpuDeviceOptions = {}) {}

  /** The device (created once); rejects with BackendUnavailableError where WebGPU is unavailable. */
  context(): Promise<WebGpuContext> {
    this.#ctx ??= WebGpuContext.create(this.options);
    return this.#ctx;
  }

  /** Runs `f` after every earlier task of this backend has settled. */
  readonly exclusive = <T>(f: () => Promise<T>): Promise<T> => {
    const next = this.#tail.then(f, f);
    this.#tail = next.catch(() => undefined);
    return next;
  };

  async prepare(graph: Graph, plan: ExecutionPlan): Promise<PreparedGraph> {
    const ctx = await this.context();
    return this.exclusive(async () => {
      const weights = WeightStore.prepare(ctx, graph);
      this.#weights.push(weights);
      const prepared = new WebGpuPreparedGraph(graph, plan, ctx, weights, this.exclusive);
      this.#graphs.push(prepared);
      return prepared;
    });
  }

  /** Nodes of every graph prepared here that ran on the CPU with their data on the GPU. */
  fallbacks(): Fallback[] {
    const all = new Map<string, Fallback>();
    for (const g of this.#graphs) for (const [k, v] of g.fallbacks) all.set(k, v);
    return [...all.values()];
  }

  async dispose(): Promise<void> {
    const ctx = this.#ctx;
    this.#ctx = undefined;
    if (!ctx) return;
    await this.#tail;
    const c = await ctx.catch(() => undefined);
    for (const w of this.#weights) if (c) w.dispose();
    this.#weights.length = 0;
    this.#graphs.length = 0;
    c?.dispose();
  }
}
