/**
 * The webgpu backend behind the runtime seam: one device per backend (created on first prepare, so a session
 * can be constructed synchronously), weights uploaded once per prepared graph, runs serialised on the device.
 * Creating the device throws BackendUnavailableError (code BACKEND_UNAVAILABLE) when the optional `webgpu`
 * package or an adapter is missing.
 *
 * Precision (`precision: "fp16"`) is resolved on the device at prepare: fp16 on tensor cores, fp16 on the SIMT
 * kernels (no subgroup matrices), or fp32 (no shader-f16), each downgrade with one line on stderr
 * (precision.ts). fp16 creates the device with Dawn's unsafe toggles: on NVIDIA through Vulkan shader-f16
 * and subgroup matrices exist only behind them.
 */

import { OptionError } from "../../errors.js";
import type { Graph } from "../../ir/graph.js";
import type { Backend, ExecutionPlan, PreparedGraph } from "../backend.js";
import { WebGpuContext } from "./context.js";
import type { WebGpuDeviceOptions } from "./device.js";
import { type Fallback, type GraphPrecision, WebGpuPreparedGraph } from "./graph/prepared-graph.js";
import { replayDefault } from "./graph/replay-plans.js";
import { WeightStore } from "./graph/weights.js";
import { type F16Kernel, type Precision, tcAttentionOptIn } from "./precision.js";

export type { Fallback };

export interface WebGpuBackendOptions extends WebGpuDeviceOptions {
  /** "fp32" (default) or "fp16": f16 storage and GEMM/attention inputs, f32 accumulation and statistics. */
  precision?: Precision;
  /**
   * The graph is a float16 model lifted to float32 types (passes/lift-float16.ts) and fp16 is its default,
   * not the caller's request: the notice says so where the device has no shader-f16.
   */
  float16Model?: boolean;
  /** fp16 GEMM kernels: "auto" (tensor cores where detected, else SIMT), or forced (benchmarks). */
  f16Kernel?: "auto" | F16Kernel;
  /**
   * Replay recorded runs (graph/replay-plans.ts): default true, or MHAFUSE_WEBGPU_REPLAY=0 → false. false runs
   * every run node by node (benchmarks compare the two).
   */
  replay?: boolean;
}

export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  #ctx: Promise<WebGpuContext> | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #weights: WeightStore[] = [];
  readonly #graphs: WebGpuPreparedGraph[] = [];

  #mode: Promise<GraphPrecision> | undefined;
  readonly #replay: boolean;

  constructor(private readonly options: WebGpuBackendOptions = {}) {
    this.#replay = options.replay ?? replayDefault();
  }

  /** The device (created once); rejects with BackendUnavailableError where WebGPU is unavailable. */
  context(): Promise<WebGpuContext> {
    const fp16 = this.options.precision === "fp16";
    this.#ctx ??= WebGpuContext.create({ ...this.options, unsafeF16: this.options.unsafeF16 ?? fp16 });
    return this.#ctx;
  }

  /** What the requested precision gets on this device (resolved once; the notice is printed then). */
  precision(): Promise<GraphPrecision> {
    this.#mode ??= this.context().then(async (ctx) => {
      const r = await ctx.resolvePrecision(
        this.options.precision ?? "fp32",
        this.options.float16Model ? "float16 model" : undefined,
      );
      if (r.precision === "fp32") return {};
      const forced = this.options.f16Kernel ?? "auto";
      if (forced === "tensor-core" && r.kernel !== "tensor-core")
        throw new OptionError(
          `f16Kernel "tensor-core": this device has no tensor cores for WebGPU (${ctx.f16?.reason ?? "not detected"})`,
        );
      const f16 = forced === "auto" ? r.kernel! : forced;
      return { f16, attention: f16 === "tensor-core" && tcAttentionOptIn() ? "tensor-core" : "simt" };
    });
    return this.#mode;
  }

  /** Runs `f` after every earlier task of this backend has settled. */
  readonly exclusive = <T>(f: () => Promise<T>): Promise<T> => {
    const next = this.#tail.then(f, f);
    this.#tail = next.catch(() => undefined);
    return next;
  };

  async prepare(graph: Graph, plan: ExecutionPlan): Promise<PreparedGraph> {
    const ctx = await this.context();
    const mode = await this.precision();
    return this.exclusive(async () => {
      const weights = await WeightStore.prepare(ctx, graph, mode.f16 !== undefined);
      this.#weights.push(weights);
      const prepared = new WebGpuPreparedGraph(graph, plan, ctx, weights, this.exclusive, mode, this.#replay);
      this.#graphs.push(prepared);
      return prepared;
    });
  }

  /** Nodes of every graph prepared here that ran on the CPU with data the GPU had or should have had. */
  fallbacks(): Fallback[] {
    const all = new Map<string, Fallback>();
    for (const g of this.#graphs) for (const [k, v] of g.fallbacks) all.set(k, v);
    return [...all.values()];
  }

  async dispose(): Promise<void> {
    const ctx = this.#ctx;
    this.#ctx = undefined;
    this.#mode = undefined;
    if (!ctx) return;
    await this.#tail;
    const c = await ctx.catch(() => undefined);
    for (const g of this.#graphs) g.dispose();
    for (const w of this.#weights) if (c) w.dispose();
    this.#weights.length = 0;
    this.#graphs.length = 0;
    c?.dispose();
  }
}
