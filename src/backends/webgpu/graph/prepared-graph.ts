/**
 * A graph prepared for the webgpu backend. Per run: host feeds stay on the host until a GPU kernel needs them
 * (int64 ids and masks feed the host shape chains and are never uploaded as such); each node runs on its GPU
 * kernel when one covers it and its data is on the device, else on the op's CPU reference — the shape chains
 * (all-host inputs) by design, other nodes as a reported fallback with an explicit read-back (model data of a
 * dtype no kernel takes never reaches the device: reported all the same). All dispatches go into one
 * recorder, submitted once with the copies of the fetched values into one staging buffer, which is mapped
 * once: one read-back per run.
 *
 * Replay (./replay-plans.ts): a run records its commands; from the second equal recording on, runs with the
 * same feed dims, dtypes, fetches and deciding host values replay that recording instead of running node by
 * node (`replay: false`, profiled and verify runs do not).
 *
 * fp16 mode (`mode`): float activations live as f16 between kernels (f32Values() keeps residual sums f32),
 * weights were converted at prepare (WeightStore), and values leaving the device — fetched outputs, inputs of
 * a CPU fallback — are cast back to float32 on the GPU first, so the host sees the model's dtype.
 */
import { type DType, isFloat } from "../../../ir/dtype.js";
import type { Graph, Node } from "../../../ir/graph.js";
import { opsetOf } from "../../../ir/graph.js";
import { Tensor } from "../../../ir/tensor.js";
import { type OpDef, resolveOp } from "../../../ops/index.js";
import type { ExecutionPlan, PreparedGraph, ReplayStatus, RunOptions } from "../../backend.js";
import { Usage } from "../buffer-pool.js";
import type { WebGpuContext } from "../context.js";
import { WebGpuError } from "../device.js";
import type { F16Kernel } from "../precision.js";
import { copyMappedInto, prefaultedBuffer } from "../readback.js";
import type { KernelTiming } from "../recorder.js";
import { type DeferredSteps, deferredSteps } from "./deferred.js";
import { f32Values } from "./f32-values.js";
import type { GpuKernelContext, GpuKernelDef, Storage } from "./kernel-context.js";
import { webgpuKernels } from "./kernels.js";
import { ReplayCapture } from "./replay-capture.js";
import { type OutputLayout, type OutputSource, ReplayPlan } from "./replay-plan.js";
import { ReplayPlans } from "./replay-plans.js";
import { RunState } from "./run-state.js";
import { ShapeChainCache } from "./shape-cache.js";
import { DeviceValue, isDevice, LAZY_INPUT, type RunValue } from "./values.js";
import type { WeightStore } from "./weights.js";

/**
 * A node that ran on the CPU although its data was on the GPU — or would have been, had a kernel taken its
 * dtype (float16, float64 model data) — and why.
 */
export interface Fallback {
  node: string;
  op: string;
  reason: string;
}

/** How a prepared graph computes: fp32, or fp16 with its GEMM and attention kernels. */
export interface GraphPrecision {
  /** fp16 mode's GEMM kernel family; undefined: fp32. */
  f16?: F16Kernel;
  /** fp16 mode's attention kernel. */
  attention?: F16Kernel;
}

export class WebGpuPreparedGraph implements PreparedGraph {
  private readonly opsets: number[];
  /** fp16 mode: the float values stored as f32 (residual sums); see f32-values.ts. */
  private readonly keepF32: ReadonlySet<string>;
  private readonly ops: OpDef[];
  private readonly kernels: Map<string, GpuKernelDef | null>[];
  /** Steps computed only when a reader needs them (see deferred.ts). */
  private readonly deferred: DeferredSteps;
  /** Per-kernel GPU times of the last run made with `profile: true` (empty without timestamp-query). */
  lastProfile: KernelTiming[] = [];
  /** Deferred steps the last run never needed (tests: the lazy fallback bias stayed unbuilt). */
  skippedLastRun = 0;
  /** Host shape chains per feed-dims signature (see shape-cache.ts). */
  readonly shapeCache: ShapeChainCache;
  /** Fallbacks seen by runs so far, by node name (the session and `inspect` report them). */
  readonly fallbacks = new Map<string, Fallback>();
  /**
   * Nodes whose last run was a GPU kernel (by name). Nodes with every input on the host (the shape and mask
   * chains) run on the CPU reference without being fallbacks: this tells a test which of the two it was.
   */
  readonly onDevice = new Set<string>();
  /** Recorded runs replayed instead of running node by node (see the header). */
  readonly replay: ReplayPlans;
  readonly #feedNames: ReadonlySet<string>;
  /** The graph's initializers: model data, which a GPU kernel would read from the device. */
  readonly #initializers: ReadonlySet<Tensor>;

  /** `replay`: replay recorded runs (default true). */
  constructor(
    private readonly graph: Graph,
    private readonly plan: ExecutionPlan,
    private readonly gpu: WebGpuContext,
    private readonly weights: WeightStore,
    private readonly exclusive: <T>(f: () => Promise<T>) => Promise<T>,
    private readonly mode: GraphPrecision = {},
    replay = true,
  ) {
    this.keepF32 = mode.f16 ? f32Values(graph) : new Set();
    this.opsets = plan.order.map((n) => opsetOf(graph, n.domain));
    this.ops = plan.order.map((n, i) => resolveOp(n, this.opsets[i]!));
    this.kernels = plan.order.map(() => new Map());
    this.shapeCache = new ShapeChainCache(graph, plan.order);
    this.deferred = deferredSteps(graph, plan.order);
    this.replay = new ReplayPlans(replay);
    this.#feedNames = new Set(graph.inputs.map((i) => i.name));
    this.#initializers = new Set(graph.initializers.values());
  }

  replayStatus(): ReplayStatus {
    return this.replay.status;
  }

  /** Returns the replay plans' buffers to the pool (later runs record and capture anew). */
  release(): Promise<void> {
    return this.exclusive(async () => this.replay.release());
  }

  /** `release` without waiting for runs: the backend calls it while disposing, after every run settled. */
  dispose(): void {
    this.replay.release();
  }

  /** Runs are serialised per backend: a run's recording and its pool reuse must not interleave with another's. */
  run(
    feeds: Readonly<Record<string, Tensor>>,
    fetches: readonly string[],
    options: RunOptions = {},
  ): Promise<Record<string, Tensor>> {
    return this.exclusive(() => this.runNow(feeds, fetches, options));
  }

  private async runNow(
    feeds: Readonly<Record<string, Tensor>>,
    fetches: readonly string[],
    options: RunOptions,
  ): Promise<Record<string, Tensor>> {
    const keep = options.keepIntermediates ?? false;
    const profile = options.profile ?? false;
    // Replay where it may (not when every value is kept, nor when each dispatch is timed), else record.
    let capture: ReplayCapture | undefined;
    const key = `${this.shapeCache.key(feeds)}|${fetches.join(",")}`;
    if (this.replay.enabled && (keep || profile))
      this.replay.bypass(keep ? "every value is kept (verify)" : "profiled run");
    else if (this.replay.enabled) {
      const replayed = await this.replay.replay(key, feeds);
      if (replayed) {
        this.skippedLastRun = replayed.plan.skipped;
        return replayed.outputs;
      }
      capture = new ReplayCapture((name) => this.shapeCache.dimsOnly.has(name));
    }
    const state = new RunState(this.gpu, this.weights.buffers, profile, capture?.tape);
    const values = new Map<string, RunValue>(this.graph.initializers);
    for (const [k, v] of Object.entries(feeds)) {
      values.set(k, v);
      if (isFloat(v.type) && v.type !== "float32") state.modelData.add(v);
      // Float feeds are model data: the first GPU kernel reading one uploads it (once per run).
      if (v.type === "float32") state.deviceFeeds.add(v);
    }
    const signature = this.shapeCache.key(feeds);
    const { order, releaseAfter } = this.plan;
    // Verify mode keeps every value: nothing is deferred there.
    const lazy = keep ? undefined : this.deferred;
    const done = new Set<number>();
    const input = (node: Node, name: string): RunValue => {
      const v = values.get(name);
      if (!v) throw new WebGpuError(node.name, `input '${name}' has no value`);
      return v;
    };
    const runStep = async (step: number, inputs: (RunValue | undefined)[]): Promise<void> => {
      const node = order[step]!;
      let outputs = this.shapeCache.get(signature, step) as (RunValue | undefined)[] | undefined;
      if (!outputs) {
        outputs = await this.runNode(step, node, inputs, state, pending, capture);
        this.shapeCache.set(signature, step, node, outputs);
      }
      done.add(step);
      node.outputs.forEach((name, i) => {
        const v = outputs[i];
        if (!name || !v) return;
        values.set(name, v);
        if (isDevice(v)) state.hold(v.buffer);
      });
    };
    // A deferred value, computed now (its deferred producers first).
    const pending = async (name: string): Promise<RunValue> => {
      const step = lazy?.producer.get(name);
      if (step !== undefined && !done.has(step)) {
        const node = order[step]!;
        const inputs: (RunValue | undefined)[] = [];
        for (const n of node.inputs) inputs.push(n ? (values.get(n) ?? (await pending(n))) : undefined);
        await runStep(step, inputs);
      }
      return input(order[step ?? 0]!, name);
    };
    let result: Record<string, Tensor>;
    let layout: OutputLayout | undefined;
    try {
      for (let step = 0; step < order.length; step++) {
        const node = order[step]!;
        if (!lazy?.deferred[step]) {
          const inputs = node.inputs.map((name) =>
            !name
              ? undefined
              : lazy?.producer.has(name) && !values.has(name)
                ? LAZY_INPUT
                : input(node, name),
          );
          await runStep(step, inputs);
        }
        if (!keep)
          for (const name of releaseAfter[step]!) {
            if (lazy?.keepAlive.has(name)) continue;
            const v = values.get(name);
            if (isDevice(v)) state.drop(v.buffer);
            values.delete(name);
          }
      }
      this.skippedLastRun = lazy ? lazy.deferred.filter((d, i) => d && !done.has(i)).length : 0;
      const wanted = keep ? [...values.keys()] : fetches;
      ({ result, layout } = await this.readOut(state, values, wanted, capture));
      if (options.profile) this.lastProfile = state.timings;
    } finally {
      state.finish();
    }
    if (capture && layout) {
      if (state.flushes > 0) capture.refuse("a value was read back to the host in the middle of the run");
      capture.skipped = this.skippedLastRun;
      const graph = { order, opsets: this.opsets, ops: this.ops, gpu: this.gpu };
      // The run's buffers are all back in the pool: a plan takes those its tape names out of it.
      this.replay.consider(key, capture, () =>
        ReplayPlan.build(key, graph, capture, layout, this.#feedNames, this.weights.buffers),
      );
    }
    return result;
  }

  private async runNode(
    step: number,
    node: Node,
    inputs: (RunValue | undefined)[],
    state: RunState,
    pending: (name: string) => Promise<RunValue>,
    capture: ReplayCapture | undefined,
  ): Promise<(RunValue | undefined)[]> {
    const opset = this.opsets[step]!;
    const kernel = this.kernelFor(step, node, opset, inputs);
    let reason = kernel ? undefined : "no webgpu kernel";
    const waiting = inputs.flatMap((v, i) => (v === LAZY_INPUT ? [i] : []));
    if (waiting.length > 0 && !(kernel && waiting.every((i) => kernel.lazyInputs?.includes(i))))
      reason = "a deferred input is needed";
    if (kernel && reason === undefined) {
      const host = new Set(kernel.hostInputs ?? []);
      const onDevice = inputs.some(
        (v, i) =>
          !host.has(i) && v !== undefined && (isDevice(v) || this.weights.has(v) || state.deviceFeeds.has(v)),
      );
      if (onDevice) reason = kernel.accepts?.(node, opset, inputs, this.gpu);
      if (onDevice && reason === undefined) {
        // Shape inputs are read on the host; one computed on the device is read back first.
        for (const i of host)
          if (isDevice(inputs[i])) {
            capture?.refuse(`${opLabel(node)} '${node.name}' reads a device value on the host`);
            inputs[i] = await this.toHost(inputs[i]!, state);
          }
        this.onDevice.add(node.name);
        state.rec.node = node.name;
        const commands = capture?.tape.commands.length ?? 0;
        capture?.beginKernel(node, inputs);
        const outputs = kernel.run(this.kernelContext(step, node, opset, state, kernel, capture), inputs);
        capture?.endKernel(step, kernel, inputs, outputs, capture.tape.commands.length > commands);
        return outputs;
      }
    }
    if (waiting.length > 0) {
      // The kernel will not take the node without its deferred inputs: compute them, then decide again.
      for (const i of waiting) inputs[i] = await pending(node.inputs[i]!);
      return this.runNode(step, node, inputs, state, pending, capture);
    }
    // The CPU reference: every device input read back (a fallback), host inputs as they are.
    this.onDevice.delete(node.name);
    // Model data whose dtype no kernel takes (float16, float64) stays on the host: a fallback without
    // read-backs, reported as one, and so are the nodes reading what it computes.
    const stranded = kernel ? undefined : this.dtypeMiss(node, opset, inputs, state);
    if (stranded) this.fallbacks.set(node.name, { node: node.name, op: opLabel(node), reason: stranded });
    const hostInputs: (Tensor | undefined)[] = [];
    for (const v of inputs) {
      if (isDevice(v)) {
        this.fallbacks.set(node.name, { node: node.name, op: opLabel(node), reason: reason ?? "" });
        capture?.refuse(`${opLabel(node)} '${node.name}' runs on the CPU with device inputs (${reason})`);
        hostInputs.push(await this.toHost(v, state));
      } else hostInputs.push(v);
    }
    const outputs = this.ops[step]!.run({ node, opset }, hostInputs);
    // What it computed from such data is such data too (through aliases and host ops alike).
    if (stranded || inputs.some((v) => this.isStranded(v, state)))
      for (const o of outputs) if (o && isFloat(o.type) && o.type !== "float32") state.modelData.add(o);
    capture?.hostStep(step, node, inputs);
    return outputs;
  }

  /**
   * Why a node with no kernel for its dtypes would have run on the GPU otherwise: its op has a float32 kernel,
   * its first input (the one kernels are matched on) is a float type other than float32, and a data input
   * of that kernel is on the device, an initializer, or float16 / float64 model data (a feed, or computed
   * from one or from an initializer) — what a float32 graph would have on the device. undefined for the
   * host chains (shapes, integer masks).
   */
  private dtypeMiss(
    node: Node,
    opset: number,
    inputs: readonly (RunValue | undefined)[],
    state: RunState,
  ): string | undefined {
    const dtype = inputs.find((v) => v !== undefined)?.type;
    if (!dtype || dtype === "float32" || !isFloat(dtype)) return undefined;
    const f32 = webgpuKernels.find(node, opset, ["float32"]);
    if (!f32) return undefined;
    const host = new Set(f32.hostInputs ?? []);
    const data = inputs.some(
      (v, i) =>
        v !== undefined &&
        !host.has(i) &&
        (isDevice(v) || this.#initializers.has(v) || this.isStranded(v, state)),
    );
    return data ? `no webgpu kernel takes ${dtype} inputs` : undefined;
  }

  /** A float16 / float64 host tensor that is model data: a feed, an initializer, or computed from them. */
  private isStranded(v: RunValue | undefined, state: RunState): boolean {
    return (
      v !== undefined &&
      !isDevice(v) &&
      isFloat(v.type) &&
      v.type !== "float32" &&
      (this.#initializers.has(v) || state.modelData.has(v))
    );
  }

  /**
   * The context `kernel` runs node `step` in; `f32Storage` kernels get f32 storage only (fp16 mode casts their
   * f16 inputs; their outputs stay f32). `capture` notes its host uploads for replay.
   */
  private kernelContext(
    step: number,
    node: Node,
    opset: number,
    state: RunState,
    kernel: GpuKernelDef,
    capture: ReplayCapture | undefined,
  ): GpuKernelContext {
    const f32Only = kernel.f32Storage ?? false;
    const onDevice = (v: RunValue, f16: boolean): DeviceValue => {
      if (isDevice(v)) return v;
      const w = this.weights.get(v, false, f16) ?? this.weights.get(v, false, !f16);
      if (w) return w;
      let up = state.uploads.get(v);
      if (!up) {
        if (v.type !== "float32" && v.type !== "int32")
          throw new WebGpuError(node.name, `a ${v.type} tensor cannot go to the device`);
        const u = state.upload(v.data as Float32Array | Int32Array);
        up = new DeviceValue(v.type, v.dims, state.temp(u.buffer));
        state.uploads.set(v, up);
        capture?.touched(v, u);
      } else capture?.touched(v);
      return up;
    };
    const device = (v: RunValue, wanted?: Storage): DeviceValue => {
      const storage = f32Only ? "f32" : wanted;
      const d = onDevice(v, storage === "f16");
      return storage ? state.convert(d, storage === "f16") : d;
    };
    const f16 = f32Only ? undefined : this.mode.f16;
    const keep = this.keepF32;
    return {
      node,
      opset,
      gpu: this.gpu,
      f16,
      attentionKernel: f16 ? (this.mode.attention ?? "simt") : undefined,
      outF16: (i) => !!f16 && !keep.has(node.outputs[i] ?? ""),
      get rec() {
        return state.rec;
      },
      device,
      alloc: (dims, type, half) => state.alloc(dims, type, !f32Only && half),
      scratch: (v) => this.gpu.pool.release(v.buffer),
      weight: (t, transposed) => this.weights.get(t, transposed, !!f16),
      uploadInt32: (data) => state.temp(state.upload(data).buffer),
      uploadHostData: (slot, inputs) => {
        const data = kernel.hostData?.[slot];
        if (!data) throw new WebGpuError(node.name, `the kernel declares no host data for input ${slot}`);
        // Shared with an earlier node of this run: its buffer (and, replayed, its rewrite) serves this one too.
        const share = kernel.hostDataShare?.[slot]?.(node, inputs);
        const shared = share === undefined ? undefined : state.sharedHostData.get(data);
        const earlier = share === undefined ? undefined : shared?.get(share);
        if (earlier) {
          capture?.hostDataUploaded(step, slot);
          return earlier;
        }
        const u = state.upload(data(node, inputs));
        capture?.hostDataUploaded(step, slot, u);
        const buffer = state.temp(u.buffer);
        if (share !== undefined) {
          if (shared) shared.set(share, buffer);
          else state.sharedHostData.set(data, new Map([[share, buffer]]));
        }
        return buffer;
      },
    };
  }

  private async toHost(value: DeviceValue, state: RunState): Promise<Tensor> {
    const v = state.convert(value, false);
    await state.flush();
    const bytes = await this.gpu.pool.readback(v.buffer, v.size * 4);
    return new Tensor(v.type, v.type === "float32" ? new Float32Array(bytes) : new Int32Array(bytes), v.dims);
  }

  /**
   * The fetched device values copied into one staging buffer, submitted with the run, mapped once. With
   * `capture`, also where each output came from, for a replay plan.
   */
  private async readOut(
    state: RunState,
    values: Map<string, RunValue>,
    wanted: readonly string[],
    capture: ReplayCapture | undefined,
  ): Promise<{ result: Record<string, Tensor>; layout: OutputLayout | undefined }> {
    const result: Record<string, Tensor> = {};
    const outputs: OutputSource[] = [];
    const copies: { name: string; v: DeviceValue; offset: number }[] = [];
    let total = 0;
    for (const name of wanted) {
      const value = values.get(name);
      if (!value) continue;
      if (!isDevice(value)) {
        result[name] = value;
        if (capture) outputs.push({ name, host: capture.source(name, value) });
      } else {
        // f16 storage leaves the device as the model's float32 (one cast dispatch, recorded with the run).
        const v = state.convert(value, false);
        copies.push({ name, v, offset: total });
        outputs.push({ name, device: { offset: total, type: v.type, dims: v.dims } });
        total += v.size * 4;
      }
    }
    if (total === 0) {
      await state.submit();
      for (const c of copies) result[c.name] = emptyOf(c.v);
      return { result, layout: capture ? { outputs, staging: undefined, total } : undefined };
    }
    const pool = this.gpu.pool;
    const staging = pool.acquire(total, Usage.MAP_READ | Usage.COPY_DST);
    try {
      for (const c of copies)
        if (c.v.size > 0) state.rec.copy(c.v.buffer, 0, staging, c.offset, c.v.size * 4);
      const submitted = state.submit();
      // Awaited below; marked handled now, should allocating the destination throw first.
      submitted.catch(() => undefined);
      // While the GPU works: the destination, its pages touched (readback.ts).
      const bytes = prefaultedBuffer(total);
      await submitted;
      await copyMappedInto(staging, bytes);
      for (const { name, v, offset } of copies) {
        const n = v.size;
        result[name] = new Tensor(
          v.type,
          v.type === "float32" ? new Float32Array(bytes, offset, n) : new Int32Array(bytes, offset, n),
          v.dims,
        );
      }
    } finally {
      if (staging.mapState === "mapped") staging.unmap();
      pool.release(staging);
    }
    return { result, layout: capture ? { outputs, staging, total } : undefined };
  }

  private kernelFor(
    step: number,
    node: Node,
    opset: number,
    inputs: readonly (RunValue | undefined)[],
  ): GpuKernelDef | undefined {
    const dtypes: (DType | undefined)[] = inputs.map((t) => t?.type);
    const key = dtypes.join();
    const cache = this.kernels[step]!;
    let k = cache.get(key);
    if (k === undefined) {
      k = webgpuKernels.find(node, opset, dtypes) ?? null;
      cache.set(key, k);
    }
    return k ?? undefined;
  }
}

const opLabel = (n: Node) => (n.domain ? `${n.domain}.${n.opType}` : n.opType);

function emptyOf(v: DeviceValue): Tensor {
  return new Tensor(v.type, v.type === "float32" ? new Float32Array(0) : new Int32Array(0), v.dims);
}
