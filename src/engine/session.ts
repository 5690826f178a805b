import type { PreparedGraph } from "../backends/backend.js";
import { CpuBackend, type CpuBackendOptions } from "../backends/cpu/backend.js";
import { CPU_KERNELS, type CpuKernels, type KernelChoice } from "../backends/cpu/defaults.js";
import { MhafuseError } from "../errors.js";
import type { Graph, Model, ValueInfo } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { loadModel } from "../onnx/index.js";
import { type AttentionReport, type GraphOptimizationLevel, optimizeGraph } from "../passes/index.js";
import { type ExecutionPlan, planGraph } from "./executor.js";
import { type TensorLike, validateFeeds } from "./feeds.js";
import { compareFusion, type VerifyResult } from "./verify.js";

export type { GraphOptimizationLevel };

export interface SessionOptions {
  /** "cpu" is the only provider today; the list form mirrors onnxruntime-node. */
  executionProviders?: (string | { name: string })[];
  /** Like onnxruntime's: attention fusion runs at "extended" and "all" (default "all"). */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Run the unfused graph beside the fused one and fail when an attention block's output differs. */
  verify?: boolean | { tolerance?: number };
  /** Threads for parallel kernels, this thread included (as onnxruntime's; default MHAFUSE_THREADS or all cores). */
  intraOpNumThreads?: number;
  /** mhafuse: GEMM kernel, "auto" (WebAssembly SIMD where available) or "js" (default "js" if MHAFUSE_NO_WASM). */
  gemmKernel?: KernelChoice;
  /** mhafuse: attention kernel, likewise (default "js" if MHAFUSE_NO_WASM or MHAFUSE_ATTENTION_KERNEL=js). */
  attentionKernel?: KernelChoice;
  /**
   * mhafuse: CPU kernel family, "native" (C++ addon; the WebAssembly kernels when it does not load), "wasm"
   * or "js" (default MHAFUSE_CPU_KERNELS, else "native"; MHAFUSE_NO_NATIVE=1 never loads the addon).
   */
  cpuKernels?: CpuKernels;
}

/** Input-shape signatures whose prepared graphs a session keeps. */
const PREPARED_CACHE_SIZE = 8;

const SUPPORTED_PROVIDERS = new Set(["cpu"]);

function checkProviders(list: SessionOptions["executionProviders"]): void {
  for (const p of list ?? ["cpu"]) {
    const name = typeof p === "string" ? p : p.name;
    if (!SUPPORTED_PROVIDERS.has(name)) {
      throw new MhafuseError(
        `execution provider '${name}' is not available; supported: ${[...SUPPORTED_PROVIDERS].join(", ")}`,
      );
    }
  }
}

/** onnxruntime-node-compatible session: create from a path or bytes, then `await run(feeds)`. */
export class InferenceSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueInfo[];
  readonly outputMetadata: readonly ValueInfo[];
  /** What fusion found, fused and declined (empty when optimisation is disabled). */
  readonly attentionReport: readonly AttentionReport[];
  /** The graph that runs (after optimisation). */
  readonly graph: Graph;
  /** Filled after each run in verify mode. */
  lastVerify?: VerifyResult;
  private readonly plan: ExecutionPlan;
  private readonly backend: CpuBackend;
  private readonly prepared = new Map<string, Promise<PreparedGraph>>();
  private released = false;
  /** Verify mode: the unfused graph, prepared on first use. */
  private unfused?: Promise<PreparedGraph>;

  private constructor(
    graph: Graph,
    private readonly original: Graph,
    report: AttentionReport[],
    private readonly verifyTolerance: number | undefined,
    backendOptions: CpuBackendOptions,
  ) {
    this.backend = new CpuBackend(backendOptions);
    this.graph = graph;
    this.attentionReport = report;
    this.inputMetadata = graph.inputs;
    this.outputMetadata = graph.outputs;
    this.inputNames = graph.inputs.map((i) => i.name);
    this.outputNames = graph.outputs.map((o) => o.name);
    this.plan = planGraph(graph);
  }

  static async create(
    model: string | Uint8Array | ArrayBuffer | Model,
    options: SessionOptions = {},
  ): Promise<InferenceSession> {
    checkProviders(options.executionProviders);
    const loaded =
      typeof model === "string" || model instanceof Uint8Array
        ? await loadModel(model)
        : model instanceof ArrayBuffer
          ? await loadModel(new Uint8Array(model))
          : model;
    return InferenceSession.fromGraph(loaded.graph, options);
  }

  /** A session over an in-memory graph (e.g. one made with GraphBuilder). */
  static fromGraph(graph: Graph, options: SessionOptions = {}): InferenceSession {
    checkProviders(options.executionProviders);
    if (options.cpuKernels !== undefined && !CPU_KERNELS.includes(options.cpuKernels))
      throw new MhafuseError(
        `cpuKernels must be one of ${CPU_KERNELS.map((k) => `"${k}"`).join(", ")}, got ${JSON.stringify(options.cpuKernels)}`,
      );
    const level = options.graphOptimizationLevel ?? "all";
    const optimized = optimizeGraph(graph, { level });
    const tolerance = options.verify
      ? ((typeof options.verify === "object" ? options.verify.tolerance : undefined) ?? 1e-3)
      : undefined;
    if (
      options.intraOpNumThreads !== undefined &&
      !(Number.isInteger(options.intraOpNumThreads) && options.intraOpNumThreads > 0)
    )
      throw new MhafuseError(
        `intraOpNumThreads must be a positive integer, got ${options.intraOpNumThreads}`,
      );
    for (const [name, value] of [
      ["gemmKernel", options.gemmKernel],
      ["attentionKernel", options.attentionKernel],
    ] as const) {
      if (value !== undefined && value !== "auto" && value !== "js")
        throw new MhafuseError(`${name} must be "auto" or "js", got ${JSON.stringify(value)}`);
    }
    return new InferenceSession(optimized.graph, graph, optimized.report, tolerance, {
      cpuKernels: options.cpuKernels,
      threads: options.intraOpNumThreads,
      gemmKernel: options.gemmKernel,
      attentionKernel: options.attentionKernel,
    });
  }

  async run(feeds: Record<string, TensorLike>, fetches?: readonly string[]): Promise<Record<string, Tensor>> {
    const checked = validateFeeds(this.graph.inputs, feeds);
    const wanted = fetches ?? this.outputNames;
    for (const name of wanted) {
      if (!this.outputNames.includes(name)) {
        throw new MhafuseError(
          `unknown output '${name}'; the model's outputs are: ${this.outputNames.join(", ")}`,
        );
      }
    }
    const prepared = await this.preparedFor(checked);
    if (this.verifyTolerance === undefined) return prepared.run(checked, wanted);
    // Verify mode: both graphs run on the backend keeping every value, then each fused block is compared.
    this.unfused ??= this.backend.prepare(this.original, planGraph(this.original));
    const keep = { keepIntermediates: true };
    const before = await (await this.unfused).run(checked, [], keep);
    const after = await prepared.run(checked, [], keep);
    const values = (r: Record<string, Tensor>) => new Map(Object.entries(r));
    this.lastVerify = compareFusion(
      this.original,
      this.attentionReport,
      values(before),
      values(after),
      this.verifyTolerance,
    );
    return Object.fromEntries(wanted.map((name) => [name, after[name]!]));
  }

  /**
   * The prepared graph for the feeds' shape and dtype signature, prepared on first use and cached (at most
   * PREPARED_CACHE_SIZE signatures, least recently used dropped first).
   */
  private preparedFor(feeds: Record<string, Tensor>): Promise<PreparedGraph> {
    if (this.released) throw new MhafuseError("the session was released; create a new one to run again");
    const signature = this.inputNames.map((n) => `${feeds[n]!.type}[${feeds[n]!.dims.join(",")}]`).join(";");
    let prepared = this.prepared.get(signature);
    if (prepared) this.prepared.delete(signature);
    else prepared = this.backend.prepare(this.graph, this.plan);
    this.prepared.set(signature, prepared);
    if (this.prepared.size > PREPARED_CACHE_SIZE) this.prepared.delete(this.prepared.keys().next().value!);
    return prepared;
  }

  /**
   * Stops this session's worker threads and frees its buffers and prepared graphs; later runs throw.
   * (Not needed for the process to exit: idle workers never keep it alive.)
   */
  async release(): Promise<void> {
    this.released = true;
    this.prepared.clear();
    this.unfused = undefined;
    await this.backend.dispose();
  }
}
