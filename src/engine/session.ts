import type { Backend, PreparedGraph, ReplayStatus } from "../backends/backend.js";
import { CpuBackend, type CpuBackendOptions } from "../backends/cpu/backend.js";
import { CPU_KERNELS, type CpuKernels, type KernelChoice } from "../backends/cpu/defaults.js";
import { type Fallback, WebGpuBackend } from "../backends/webgpu/backend.js";
import type { F16Kernel, Precision } from "../backends/webgpu/precision.js";
import {
  guard,
  guardAsync,
  InputError,
  MhafuseError,
  ModelLoadError,
  ModelTooLargeError,
  OptionError,
} from "../errors.js";
import { checkGraph } from "../graph-check.js";
import type { Graph, Model, ValueInfo } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { DEFAULT_MAX_MODEL_BYTES, DEFAULT_MEMORY_LIMIT_BYTES } from "../limits.js";
import { loadModel } from "../onnx/index.js";
import { readRegularFile } from "../onnx/read-file.js";
import { isBinaryMask } from "../ops/seqlens-from-mask.js";
import { type AttentionReport, type GraphOptimizationLevel, optimizeGraph } from "../passes/index.js";
import { hasFloat16Weights, isFloat16Model, liftFloat16 } from "../passes/lift-float16.js";
import { type PaddingRemovalResult, removePadding } from "../passes/remove-padding.js";
import { specializeShapes } from "../passes/specialize-shapes.js";
import { type EngineFile, isEngineFile, readEngine } from "./engine-file.js";
import { type ExecutionPlan, planGraph } from "./executor.js";
import { type TensorLike, validateFeeds } from "./feeds.js";
import { type Float16Edge, float16Edge, narrowOutputs, widenFeeds } from "./float16-edge.js";
import { checkMemory } from "./memory-check.js";
import { compareFusion, type VerifyResult } from "./verify.js";

export type { GraphOptimizationLevel };

export interface SessionOptions {
  /**
   * "cpu" (default) or "webgpu" (the optional `webgpu` package and an adapter: the whole graph on the GPU);
   * the first entry is used. The list form mirrors onnxruntime-node.
   */
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
  /**
   * mhafuse: "fp32" (default) or "fp16". On the webgpu provider fp16 stores weights (converted at prepare,
   * fp32 models included) and activations as f16, with f32 accumulation, softmax, LayerNorm statistics and
   * residual sums; outputs come back in the model's dtype. Where the adapter has no subgroup matrices it runs
   * the SIMT f16 kernels, without shader-f16 fp32 — one line on stderr each. The cpu provider runs fp32 and
   * says so on stderr (fp16 there would only lose accuracy: its kernels have no f16 arithmetic).
   * float16 models (weights already f16) on webgpu run lifted to float32 types (passes/lift-float16.ts) with
   * fp16 as their default: f16 storage, f32 math; float16 feeds and outputs as the model declares them. An
   * explicit "fp32" runs them with f32 storage too. The cpu provider runs them with its float16 op kernels.
   */
  precision?: Precision;
  /** mhafuse, webgpu fp16 only: GEMM kernels "auto" (tensor cores where detected), "simt" or "tensor-core". */
  f16Kernel?: "auto" | F16Kernel;
  /**
   * Memory cap in bytes (default 16 GiB): the model's tensors together, and any one tensor whose size is
   * known before run time, must fit, else create fails with MODEL_TOO_LARGE before allocating it.
   */
  memoryLimitBytes?: number;
  /**
   * mhafuse: automatic padding removal (default true on the CPU provider, false on webgpu — set true there to
   * use it; off in verify mode).
   * Where every packed attention op reads one [B, S] attention mask, the token-wise ops around them run on the
   * valid tokens only and the packed op in its var-seqlen form; exact at every valid position. Values at padded
   * positions of the tensors leaving that part (the encoder's outputs, and e.g. a decoder's cross-attention
   * keys) are zeros, as in TensorRT's var-seqlen BERT and onnxruntime's RestorePadding; false computes them as
   * the model does. `lastPaddingRemoval` says what the last run did.
   */
  removePadding?: boolean;
  /**
   * mhafuse, webgpu: replay recorded runs (default true; MHAFUSE_WEBGPU_REPLAY=0 sets the default to false).
   * From the second run with the same input dims, dtypes and outputs — and the same values of any input the
   * run reads on the host to decide its work, such as a padding mask with `removePadding` — a run replays the
   * recorded GPU commands instead of running node by node, and only rewrites the bytes that come from the
   * feeds (token ids, lengths, float inputs). `lastReplay` says what the last run did and, when it did not
   * replay, why. Profiled and verify runs never replay.
   * cpu: each prepared graph keeps its node calls resolved (a GEMM's packed weights, offsets and strides; a
   * view's dims) and calls them directly while the shapes hold (bound-plan.ts); false resolves every node on
   * every run. Outputs are the same either way, bit for bit.
   */
  replay?: boolean;
  /**
   * mhafuse, webgpu: keep Dawn's robustness transform, which clamps every memory access of every shader into
   * bounds (default false, as onnxruntime's WebGPU provider creates its device: the kernels bound their own
   * accesses, and the clamps halved the tensor-core GEMM and took a third off fp32 attention on an H200 —
   * bench/RESULTS.md). true is slower, for chasing a kernel suspected of reading out of bounds;
   * MHAFUSE_WEBGPU_ROBUSTNESS=1 sets the default to true.
   */
  webgpuRobustness?: boolean;
}

function memoryLimit(options: SessionOptions): number {
  return options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES;
}

/** Input-shape signatures whose prepared graphs a session keeps. */
const PREPARED_CACHE_SIZE = 8;

const SUPPORTED_PROVIDERS = new Set(["cpu", "webgpu"]);
type Provider = "cpu" | "webgpu";

/** Checks every listed provider and returns the one used (the first; "cpu" when none is listed). */
function checkProviders(list: SessionOptions["executionProviders"]): Provider {
  const names = (list ?? ["cpu"]).map((p) => (typeof p === "string" ? p : p.name));
  for (const name of names) {
    if (!SUPPORTED_PROVIDERS.has(name)) {
      throw new OptionError(
        `execution provider '${name}' is not available; supported: ${[...SUPPORTED_PROVIDERS].join(", ")}`,
      );
    }
  }
  return (names[0] ?? "cpu") as Provider;
}

/**
 * Validates `precision` and `f16Kernel` (OptionError); on the cpu provider, fp16 is accepted and runs fp32
 * with one line on stderr, like a webgpu device without shader-f16.
 */
function checkPrecision(options: SessionOptions, provider: Provider): void {
  const { precision, f16Kernel } = options;
  if (precision !== undefined && precision !== "fp32" && precision !== "fp16")
    throw new OptionError(`precision must be "fp32" or "fp16", got ${JSON.stringify(precision)}`);
  if (f16Kernel !== undefined && !["auto", "simt", "tensor-core"].includes(f16Kernel))
    throw new OptionError(
      `f16Kernel must be "auto", "simt" or "tensor-core", got ${JSON.stringify(f16Kernel)}`,
    );
  if (precision === "fp16" && provider === "cpu")
    console.warn("mhafuse cpu: fp16 requested, running fp32: the cpu provider has fp32 kernels only");
}

/** An engine file given as a `.mhaf` path or as bytes that start with its magic; undefined for ONNX models. */
async function readEngineSource(
  model: string | Uint8Array | ArrayBuffer | Model,
): Promise<EngineFile | undefined> {
  if (typeof model === "string") {
    if (!model.endsWith(".mhaf")) return undefined;
    const bytes = await readRegularFile(model, `engine file '${model}'`, DEFAULT_MAX_MODEL_BYTES, {
      invalid: (m) => new ModelLoadError(m),
      tooLarge: (m) => new ModelTooLargeError(m),
    });
    return readEngine(bytes, `engine file '${model}'`);
  }
  const bytes =
    model instanceof ArrayBuffer ? new Uint8Array(model) : model instanceof Uint8Array ? model : undefined;
  return bytes && isEngineFile(bytes) ? readEngine(bytes) : undefined;
}

/** onnxruntime-node-compatible session: create from a path or bytes, then `await run(feeds)`. */
export class InferenceSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueInfo[];
  readonly outputMetadata: readonly ValueInfo[];
  /** What fusion found, fused and declined (empty when optimisation is disabled). */
  readonly attentionReport: readonly AttentionReport[];
  /** The graph that runs (after optimisation; on webgpu a float16 model's is lifted to float32 types). */
  readonly graph: Graph;
  /** Filled after each run in verify mode. */
  lastVerify?: VerifyResult;
  /** What padding removal did for the last run's input signature (undefined when it is off). */
  lastPaddingRemoval?: PaddingRemovalResult;
  /** webgpu: whether the last run replayed a recorded one, and why not (undefined on the cpu provider). */
  lastReplay?: ReplayStatus;
  private readonly plan: ExecutionPlan;
  /** The provider the session runs on. */
  readonly provider: Provider;
  private readonly backend: Backend;
  private readonly prepared = new Map<
    string,
    {
      graph: Promise<PreparedGraph>;
      removal?: PaddingRemovalResult;
      /** Padding removed: the graph as is, for batches whose mask has no zero (prepared on first use). */
      dense?: Promise<PreparedGraph>;
    }
  >();
  private released = false;
  /** Verify mode: the unfused graph, prepared on first use. */
  private unfused?: Promise<PreparedGraph>;

  private constructor(
    graph: Graph,
    private readonly original: Graph,
    report: AttentionReport[],
    private readonly verifyTolerance: number | undefined,
    backendOptions: CpuBackendOptions,
    provider: Provider,
    private readonly paddingRemoval: boolean,
    gpuOptions: {
      precision?: Precision;
      f16Kernel?: "auto" | F16Kernel;
      replay?: boolean;
      robustness?: boolean;
      float16Model?: boolean;
    } = {},
    /** A float16 model run lifted: the model's float16 inputs and outputs, converted at run. */
    private readonly edge?: Float16Edge,
  ) {
    this.provider = provider;
    this.backend = provider === "webgpu" ? new WebGpuBackend(gpuOptions) : new CpuBackend(backendOptions);
    this.graph = graph;
    this.attentionReport = report;
    this.inputMetadata = edge?.inputs ?? graph.inputs;
    this.outputMetadata = edge?.outputs ?? graph.outputs;
    this.inputNames = graph.inputs.map((i) => i.name);
    this.outputNames = graph.outputs.map((o) => o.name);
    this.plan = planGraph(graph);
    // The CPU's native GEMM packs the graph's constant weights now, not on the first run (the padding-removed
    // and shape-specialized graphs share these arrays, so their prepares find them packed).
    if (this.backend instanceof CpuBackend && backendOptions.prepack !== false)
      this.backend.packWeights(graph);
  }

  // The public entry points only add the error edge: whatever escapes becomes a coded MhafuseError.
  static async create(
    model: string | Uint8Array | ArrayBuffer | Model,
    options: SessionOptions = {},
  ): Promise<InferenceSession> {
    return guardAsync("InferenceSession.create", () => InferenceSession.createUnguarded(model, options));
  }

  static fromGraph(graph: Graph, options: SessionOptions = {}): InferenceSession {
    return guard("InferenceSession.fromGraph", () => InferenceSession.fromGraphUnguarded(graph, options));
  }

  async run(feeds: Record<string, TensorLike>, fetches?: readonly string[]): Promise<Record<string, Tensor>> {
    return guardAsync("InferenceSession.run", () => this.runUnguarded(feeds, fetches));
  }

  private static async createUnguarded(
    model: string | Uint8Array | ArrayBuffer | Model,
    options: SessionOptions = {},
  ): Promise<InferenceSession> {
    const provider = checkProviders(options.executionProviders);
    const engine = await readEngineSource(model);
    const loaded = engine
      ? engine.model
      : typeof model === "string" || model instanceof Uint8Array
        ? await loadModel(model, { memoryLimitBytes: memoryLimit(options) })
        : model instanceof ArrayBuffer
          ? await loadModel(new Uint8Array(model), { memoryLimitBytes: memoryLimit(options) })
          : model;
    if (engine && options.verify)
      throw new OptionError(
        "verify mode needs the original ONNX model, not an engine file (it holds the fused graph only)",
      );
    if (engine && engine.header.backend !== provider)
      throw new OptionError(
        `the engine file was built for the ${engine.header.backend} provider, the session asks for ${provider}: ` +
          `rebuild it with \`mhafuse build --provider ${provider}\``,
      );
    const session = InferenceSession.fromGraphUnguarded(loaded.graph, options, engine?.header.report);
    // Fail at creation, with BackendUnavailableError (code BACKEND_UNAVAILABLE), where WebGPU cannot start.
    // … and resolve the precision there too, so its notice (or a forced kernel's OptionError) comes at creation.
    if (provider === "webgpu") await (session.backend as WebGpuBackend).precision();
    return session;
  }

  /** A session over an in-memory graph (e.g. one made with GraphBuilder). */
  /** `prebuilt`: the graph is an engine file's, already optimized; this is its fusion report. */
  private static fromGraphUnguarded(
    graph: Graph,
    options: SessionOptions = {},
    prebuilt?: AttentionReport[],
  ): InferenceSession {
    const provider = checkProviders(options.executionProviders);
    // Options first: a wrong option is the caller's mistake whatever the graph is.
    if (options.cpuKernels !== undefined && !CPU_KERNELS.includes(options.cpuKernels))
      throw new OptionError(
        `cpuKernels must be one of ${CPU_KERNELS.map((k) => `"${k}"`).join(", ")}, got ${JSON.stringify(options.cpuKernels)}`,
      );
    checkPrecision(options, provider);
    const level = prebuilt ? "disabled" : (options.graphOptimizationLevel ?? "all");
    checkGraph(graph);
    // webgpu kernels take float32 types (fp16 mode stores them as f16): a float16 model runs lifted, with
    // fp16 precision unless the caller says otherwise, and its float16 feeds and outputs converted at run.
    const lifted = provider === "webgpu" && isFloat16Model(graph);
    const source = lifted ? liftFloat16(graph) : graph;
    const halfDefault = lifted && options.precision === undefined && hasFloat16Weights(graph);
    const optimized = prebuilt ? { graph: source, report: prebuilt } : optimizeGraph(source, { level });
    checkMemory(optimized.graph, memoryLimit(options));
    const tolerance = options.verify
      ? ((typeof options.verify === "object" ? options.verify.tolerance : undefined) ?? 1e-3)
      : undefined;
    if (
      options.intraOpNumThreads !== undefined &&
      !(Number.isInteger(options.intraOpNumThreads) && options.intraOpNumThreads > 0)
    )
      throw new OptionError(`intraOpNumThreads must be a positive integer, got ${options.intraOpNumThreads}`);
    for (const [name, value] of [
      ["removePadding", options.removePadding],
      ["replay", options.replay],
      ["webgpuRobustness", options.webgpuRobustness],
    ] as const)
      if (value !== undefined && typeof value !== "boolean")
        throw new OptionError(`${name} must be true or false, got ${JSON.stringify(value)}`);
    for (const [name, value] of [
      ["gemmKernel", options.gemmKernel],
      ["attentionKernel", options.attentionKernel],
    ] as const) {
      if (value !== undefined && value !== "auto" && value !== "js")
        throw new OptionError(`${name} must be "auto" or "js", got ${JSON.stringify(value)}`);
    }
    return new InferenceSession(
      optimized.graph,
      source,
      optimized.report,
      tolerance,
      {
        cpuKernels: options.cpuKernels,
        threads: options.intraOpNumThreads,
        gemmKernel: options.gemmKernel,
        attentionKernel: options.attentionKernel,
        bind: options.replay,
      },
      provider,
      (options.removePadding ?? provider === "cpu") &&
        tolerance === undefined &&
        (prebuilt !== undefined || level === "extended" || level === "all"),
      {
        precision: options.precision ?? (halfDefault ? "fp16" : undefined),
        f16Kernel: options.f16Kernel,
        replay: options.replay,
        robustness: options.webgpuRobustness,
        float16Model: halfDefault,
      },
      lifted ? float16Edge(graph) : undefined,
    );
  }

  /**
   * webgpu: the nodes that ran on the CPU reference although their data was on the GPU (a read-back each),
   * or was model data of a dtype no GPU kernel takes (float64), with the reason, over the runs so far; the
   * shape and integer mask chains run there by design and are not listed. Empty on the CPU provider.
   */
  fallbacks(): Fallback[] {
    return this.backend instanceof WebGpuBackend ? this.backend.fallbacks() : [];
  }

  private async runUnguarded(
    feeds: Record<string, TensorLike>,
    fetches?: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const valid = validateFeeds(this.inputMetadata, feeds);
    const checked = this.edge ? widenFeeds(this.edge, valid) : valid;
    const wanted = fetches ?? this.outputNames;
    for (const name of wanted) {
      if (!this.outputNames.includes(name)) {
        throw new InputError(
          `unknown output '${name}'; the model's outputs are: ${this.outputNames.join(", ")}`,
          { input: name, expected: `one of ${this.outputNames.join(", ")}` },
        );
      }
    }
    const prepared = await this.preparedFor(checked);
    if (this.verifyTolerance === undefined) {
      const outputs = await prepared.run(checked, wanted);
      this.lastReplay = prepared.replayStatus?.();
      return this.edge ? narrowOutputs(this.edge, outputs) : outputs;
    }
    // Verify mode: both graphs run on the backend keeping every value, then each fused block is compared.
    this.unfused ??= this.backend.prepare(this.original, planGraph(this.original));
    const keep = { keepIntermediates: true };
    const before = await (await this.unfused).run(checked, [], keep);
    const after = await prepared.run(checked, [], keep);
    this.lastReplay = prepared.replayStatus?.();
    const values = (r: Record<string, Tensor>) => new Map(Object.entries(r));
    this.lastVerify = compareFusion(
      this.original,
      this.attentionReport,
      values(before),
      values(after),
      this.verifyTolerance,
    );
    const outputs = Object.fromEntries(wanted.map((name) => [name, after[name]!]));
    return this.edge ? narrowOutputs(this.edge, outputs) : outputs;
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
    else prepared = this.prepareFor(feeds);
    this.prepared.set(signature, prepared);
    if (this.prepared.size > PREPARED_CACHE_SIZE) {
      const oldest = this.prepared.keys().next().value!;
      // What it keeps between runs (webgpu replay plans' buffers) goes back; a run holding it still works.
      const evicted = this.prepared.get(oldest)!;
      for (const graph of [evicted.graph, evicted.dense])
        void graph?.then((g) => g.release?.()).catch(() => undefined);
      this.prepared.delete(oldest);
    }
    // A batch without padding gains nothing from the gather and scatter (2-14% of a BERT [1,128] run on the
    // CPU, bench/cpu.ts): it runs the graph as is, whose results are the same on every (valid) token.
    // A mask with other values than 0 and 1 is no key mask: the graph as is runs it, where the packed op falls
    // back to the model's own mask bias (SeqLensFromMask gives -1), exactly as the unfused graph computes.
    const removal = prepared.removal;
    const maskName = removal && !("skipped" in removal) ? removal.mask : undefined;
    const mask = maskName ? feeds[maskName]! : undefined;
    const whyDense = !mask
      ? undefined
      : !isBinaryMask(mask)
        ? `'${maskName}' holds values other than 0 and 1 (the model's mask bias runs instead)`
        : !hasZero(mask)
          ? `no padding in this batch: '${maskName}' has no zero`
          : undefined;
    if (whyDense) {
      prepared.dense ??= this.prepareDense(feeds);
      this.lastPaddingRemoval = { skipped: whyDense };
      return prepared.dense;
    }
    this.lastPaddingRemoval = removal;
    return prepared.graph;
  }

  /** The graph for one input signature: padding removed where it applies (its dims are known now). */
  private prepareFor(feeds: Record<string, Tensor>): {
    graph: Promise<PreparedGraph>;
    removal?: PaddingRemovalResult;
  } {
    if (!this.paddingRemoval) return { graph: this.prepareDense(feeds) };
    const removal = removePadding(this.graph, this.dimsOf(feeds));
    if ("skipped" in removal) return { graph: this.prepareDense(feeds), removal };
    return { graph: this.backend.prepare(removal.graph, planGraph(removal.graph)), removal };
  }

  /**
   * The graph as is, for one input signature. On the CPU provider its shape arithmetic is folded for the
   * feeds' dims first (specializeShapes: 132 → 80 nodes in a 4-layer BERT, each node host time on every run);
   * where that cannot be done (type inference fails on these dims) the graph runs unspecialized, and the run
   * reports whatever is wrong with the feeds as before.
   */
  private prepareDense(feeds: Record<string, Tensor>): Promise<PreparedGraph> {
    if (this.provider === "cpu" && this.verifyTolerance === undefined) {
      let specialized: Graph | undefined;
      try {
        specialized = specializeShapes(this.graph, this.dimsOf(feeds));
      } catch {
        // Left unspecialized: the run reports the problem as it would have.
      }
      if (specialized) return this.backend.prepare(specialized, planGraph(specialized));
    }
    return this.backend.prepare(this.graph, this.plan);
  }

  private dimsOf(feeds: Record<string, Tensor>): Record<string, readonly number[]> {
    return Object.fromEntries(this.inputNames.map((n) => [n, feeds[n]!.dims]));
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

/** Whether a mask tensor holds a zero (its padding marks). */
function hasZero(mask: Tensor): boolean {
  for (let i = 0; i < mask.size; i++) if (mask.getNumber(i) === 0) return true;
  return false;
}
