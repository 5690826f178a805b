import { guard, guardAsync, InputError, OptionError } from "../errors.js";
import { checkGraph } from "../graph-check.js";
import type { Graph, Model, ValueInfo } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { DEFAULT_MEMORY_LIMIT_BYTES } from "../limits.js";
import { loadModel } from "../onnx/index.js";
import { type AttentionReport, type GraphOptimizationLevel, optimizeGraph } from "../passes/index.js";
import { type ExecutionPlan, planGraph, runGraph } from "./executor.js";
import { type TensorLike, validateFeeds } from "./feeds.js";
import { checkMemory } from "./memory-check.js";
import { type VerifyResult, verifyFusionRun } from "./verify.js";

export type { GraphOptimizationLevel };

export interface SessionOptions {
  /** "cpu" is the only provider today; the list form mirrors onnxruntime-node. */
  executionProviders?: (string | { name: string })[];
  /** Like onnxruntime's: attention fusion runs at "extended" and "all" (default "all"). */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Run the unfused graph beside the fused one and fail when an attention block's output differs. */
  verify?: boolean | { tolerance?: number };
  /**
   * Memory cap in bytes (default 16 GiB): the model's tensors together, and any one tensor whose size is
   * known before run time, must fit, else create fails with MODEL_TOO_LARGE before allocating it.
   */
  memoryLimitBytes?: number;
}

function memoryLimit(options: SessionOptions): number {
  return options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES;
}

const SUPPORTED_PROVIDERS = new Set(["cpu"]);

function checkProviders(list: SessionOptions["executionProviders"]): void {
  for (const p of list ?? ["cpu"]) {
    const name = typeof p === "string" ? p : p.name;
    if (!SUPPORTED_PROVIDERS.has(name)) {
      throw new OptionError(
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

  private constructor(
    graph: Graph,
    private readonly original: Graph,
    report: AttentionReport[],
    private readonly verifyTolerance: number | undefined,
  ) {
    this.graph = graph;
    this.attentionReport = report;
    this.inputMetadata = graph.inputs;
    this.outputMetadata = graph.outputs;
    this.inputNames = graph.inputs.map((i) => i.name);
    this.outputNames = graph.outputs.map((o) => o.name);
    this.plan = planGraph(graph);
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
    checkProviders(options.executionProviders);
    const loaded =
      typeof model === "string" || model instanceof Uint8Array
        ? await loadModel(model, { memoryLimitBytes: memoryLimit(options) })
        : model instanceof ArrayBuffer
          ? await loadModel(new Uint8Array(model), { memoryLimitBytes: memoryLimit(options) })
          : model;
    return InferenceSession.fromGraphUnguarded(loaded.graph, options);
  }

  /** A session over an in-memory graph (e.g. one made with GraphBuilder). */
  private static fromGraphUnguarded(graph: Graph, options: SessionOptions = {}): InferenceSession {
    checkProviders(options.executionProviders);
    const level = options.graphOptimizationLevel ?? "all";
    checkGraph(graph);
    const optimized = optimizeGraph(graph, { level });
    checkMemory(optimized.graph, memoryLimit(options));
    const tolerance = options.verify
      ? ((typeof options.verify === "object" ? options.verify.tolerance : undefined) ?? 1e-3)
      : undefined;
    return new InferenceSession(optimized.graph, graph, optimized.report, tolerance);
  }

  private async runUnguarded(
    feeds: Record<string, TensorLike>,
    fetches?: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const checked = validateFeeds(this.graph.inputs, feeds);
    const wanted = fetches ?? this.outputNames;
    for (const name of wanted) {
      if (!this.outputNames.includes(name)) {
        throw new InputError(
          `unknown output '${name}'; the model's outputs are: ${this.outputNames.join(", ")}`,
          { input: name, expected: `one of ${this.outputNames.join(", ")}` },
        );
      }
    }
    let values: Map<string, Tensor>;
    if (this.verifyTolerance !== undefined) {
      const verified = verifyFusionRun(this.original, this.graph, this.attentionReport, checked, {
        tolerance: this.verifyTolerance,
      });
      this.lastVerify = verified.result;
      values = verified.fusedValues;
    } else {
      values = runGraph(this.graph, checked, {}, this.plan);
    }
    return Object.fromEntries(wanted.map((name) => [name, values.get(name)!]));
  }
}
