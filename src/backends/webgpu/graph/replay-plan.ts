/**
 * A replay plan: one recorded run of a prepared graph (its tape, ../tape.ts, and what ./replay-capture.ts
 * noted), replayed by later runs with the same feed dims, dtypes and fetches whose deciding host values are
 * the same. A replay does, in order:
 *  1. compares the deciding feeds (a padding mask, say) with the recorded bytes;
 *  2. evaluates the prologue — the host steps whose outputs depend on feed data — on the CPU reference, with
 *     the recorded dims-only values and device-value stand-ins, then compares the other deciding values;
 *  3. re-runs `accepts` of the kernels with host-data inputs and recomputes those bytes;
 *  4. writes the new bytes (host data, raw uploads such as float feeds) into the plan's staging buffers;
 *  5. encodes and submits the tape, in command buffers of growing size (../tape.ts submitTape): the uploads'
 *     copies first (where nothing earlier touches their destination, ../tape.ts hoistUploads), then the
 *     recorded order, consecutive dispatches in one compute pass (a command buffer boundary ends one);
 *  6. maps the outputs' staging buffer once, as a normal run does.
 * Nothing else: no kernel choice, shape check, uniform packing, pool traffic or bind-group lookup. The uniform
 * arenas and the staging buffers of constant uploads keep the bytes written when the run was recorded, so
 * they are not written again.
 *
 * Every buffer the tape names (besides the graph's weights) is taken out of the pool while the plan lives
 * (BufferPool.reserve) and returned by `release()`, so no other run, prepare or plan can be handed one.
 * Any mismatch or error before the submit is a reason not to replay: the caller then runs the graph node by
 * node, which raises the op's own error where the feeds are invalid.
 */
import type { Node } from "../../../ir/graph.js";
import { Tensor } from "../../../ir/tensor.js";
import type { OpDef } from "../../../ops/index.js";
import type { WebGpuContext } from "../context.js";
import { WebGpuError } from "../device.js";
import { copyMappedInto, prefaultedBuffer } from "../readback.js";
import { hoistUploads, submitTape, type TapeCommand } from "../tape.js";
import {
  type HostDataUpload,
  type KernelCheck,
  type PrologueStep,
  type ReplayCapture,
  type Rewrite,
  type SlotSource,
  type Snapshot,
  sameSnapshot,
} from "./replay-capture.js";
import { STAGING_USAGE } from "./run-state.js";
import { asShapeTensor, type DeviceDType, isDevice, type RunValue } from "./values.js";

/** The graph a plan replays: its plan order and each step's opset and CPU reference. */
export interface ReplayGraph {
  readonly order: readonly Node[];
  readonly opsets: readonly number[];
  readonly ops: readonly OpDef[];
  readonly gpu: WebGpuContext;
}

/** A fetched value: read from the outputs' staging buffer, or a host value (a feed, prologue output, recorded). */
export type OutputSource =
  | { readonly name: string; readonly device: { offset: number; type: DeviceDType; dims: readonly number[] } }
  | { readonly name: string; readonly host: SlotSource };

/** The outputs' staging buffer of the recorded run (undefined: nothing to read back) and its used bytes. */
export interface OutputLayout {
  readonly outputs: readonly OutputSource[];
  readonly staging: GPUBuffer | undefined;
  readonly total: number;
}

/** What a plan holds and what a replay still does on the host (tests, debugging). */
export interface ReplaySummary {
  key: string;
  dispatches: number;
  /**
   * Compute passes of the tape (copies that could not move to the front split them); submitTape ends one more
   * at each command buffer boundary.
   */
  passes: number;
  /** Buffers reserved for the plan, and their bytes. */
  buffers: number;
  bytes: number;
  /** Host steps evaluated per replay (on the CPU reference). */
  prologue: number;
  /** Host values compared with the recorded run (feeds first). */
  deciding: string[];
  /** Uploads recomputed (`hostData`) and rewritten as they are (raw) per replay. */
  hostData: number;
  raw: string[];
}

/** What a replay writes before its submit. */
interface Prepared {
  readonly values: Map<string, RunValue>;
  readonly writes: readonly { staging: GPUBuffer; data: ArrayBufferView }[];
}

export class ReplayPlan {
  readonly #graph: ReplayGraph;
  readonly #commands: readonly TapeCommand[];
  readonly #reserved: readonly GPUBuffer[];
  readonly #prologue: readonly PrologueStep[];
  /** Deciding values that are feeds (compared before the prologue runs) and the rest. */
  readonly #decidingFeeds: readonly [string, Snapshot][];
  readonly #decidingLater: readonly [string, Snapshot][];
  readonly #checks: readonly KernelCheck[];
  /** Host-data uploads with the kernel check of their step (the inputs their bytes come from). */
  readonly #hostData: readonly { upload: HostDataUpload; check: KernelCheck }[];
  readonly #raw: readonly [string, Rewrite][];
  readonly #out: OutputLayout;
  #released = false;
  /** Dispatches per replay (tests, benches). */
  readonly dispatches: number;
  /** Deferred steps the recorded run skipped (what `skippedLastRun` reports after a replay). */
  readonly skipped: number;
  /** The deciding values as recorded (a second recording with equal ones makes the plan: ./replay-plans.ts). */
  readonly deciding: ReadonlyMap<string, Snapshot>;

  private constructor(
    readonly key: string,
    graph: ReplayGraph,
    capture: ReplayCapture,
    out: OutputLayout,
    reserved: GPUBuffer[],
    feeds: ReadonlySet<string>,
  ) {
    this.#graph = graph;
    this.#commands = hoistUploads(capture.tape.commands, (b) => b.usage === STAGING_USAGE);
    this.dispatches = capture.tape.dispatches;
    this.#reserved = reserved;
    this.#prologue = capture.prologue;
    const deciding = [...capture.deciding];
    this.#decidingFeeds = deciding.filter(([n]) => feeds.has(n));
    this.#decidingLater = deciding.filter(([n]) => !feeds.has(n));
    this.#checks = capture.checks;
    const checkOf = new Map(capture.checks.map((c) => [c.step, c]));
    this.#hostData = capture.hostData.map((upload) => ({ upload, check: checkOf.get(upload.step)! }));
    this.#raw = [...capture.raw];
    this.#out = out;
    this.skipped = capture.skipped;
    this.deciding = capture.deciding;
  }

  /**
   * A plan from a finished, unrefused capture, its buffers reserved; or why the capture cannot be one. Call
   * after the recorded run returned every buffer to the pool.
   */
  static build(
    key: string,
    graph: ReplayGraph,
    capture: ReplayCapture,
    out: OutputLayout,
    feeds: ReadonlySet<string>,
    persistent: ReadonlySet<GPUBuffer>,
  ): ReplayPlan | string {
    if (capture.refused) return capture.refused;
    const missing = unresolved(graph.order, capture, out, feeds);
    if (missing) return `host value '${missing}' is not recomputed by a replay`;
    const pool = graph.gpu.pool;
    const reserved: GPUBuffer[] = [];
    for (const b of capture.tape.buffers) {
      if (persistent.has(b)) continue;
      if (!pool.reserve(b)) {
        for (const r of reserved) pool.release(r);
        return "a buffer of the recording was not returned to the pool";
      }
      reserved.push(b);
    }
    return new ReplayPlan(key, graph, capture, out, reserved, feeds);
  }

  /**
   * Replays the plan on `feeds` when it fits them, resolving with the outputs; resolves with the reason it
   * does not fit otherwise (nothing was submitted then).
   */
  async run(feeds: Readonly<Record<string, Tensor>>): Promise<Record<string, Tensor> | string> {
    if (this.#released) return "the plan was released";
    const t0 = performance.now();
    const ready = this.#prepare(feeds);
    if (typeof ready === "string") return ready;
    const gpu = this.#graph.gpu;
    gpu.gpu.checkAlive("replay");
    for (const w of ready.writes) gpu.pool.write(w.staging, w.data);
    submitTape(gpu.gpu.device, this.#commands, "mhafuse replay");
    const submitted = performance.now();
    const timing = replayPhaseListener ? { mappedAt: submitted, copyMs: 0 } : undefined;
    const result = await this.#readOut(ready.values, timing);
    if (timing)
      replayPhaseListener?.({
        hostMs: submitted - t0,
        waitMs: timing.mappedAt - submitted,
        copyMs: timing.copyMs,
      });
    return result;
  }

  describe(): ReplaySummary {
    return {
      key: this.key,
      dispatches: this.dispatches,
      passes: this.#commands.filter((c, i) => c.op === "dispatch" && this.#commands[i - 1]?.op !== "dispatch")
        .length,
      buffers: this.#reserved.length,
      bytes: this.#reserved.reduce((n, b) => n + b.size, 0),
      prologue: this.#prologue.length,
      deciding: [...this.#decidingFeeds, ...this.#decidingLater].map(([n]) => n),
      hostData: this.#hostData.length,
      raw: this.#raw.map(([n]) => n),
    };
  }

  /** Gives the reserved buffers back to the pool; the plan never runs again. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const b of this.#reserved) this.#graph.gpu.pool.release(b);
  }

  /** Steps 1–3 of the header: the run's host values and the bytes to write, or why the plan does not fit. */
  #prepare(feeds: Readonly<Record<string, Tensor>>): Prepared | string {
    for (const [name, snap] of this.#decidingFeeds)
      if (!feeds[name] || !sameSnapshot(snap, feeds[name]))
        return `input '${name}' differs from the recorded run`;
    const values = new Map<string, RunValue>(Object.entries(feeds));
    const { order, opsets, ops, gpu } = this.#graph;
    const inputsOf = (p: PrologueStep) => p.inputs.map((s) => (s ? resolve(s, values) : undefined));
    try {
      for (const p of this.#prologue) {
        const node = order[p.step]!;
        const outputs = ops[p.step]!.run({ node, opset: opsets[p.step]! }, inputsOf(p).map(asShapeTensor));
        node.outputs.forEach((name, i) => {
          if (name && outputs[i]) values.set(name, outputs[i]!);
        });
      }
      for (const [name, snap] of this.#decidingLater) {
        const v = values.get(name);
        if (!v || isDevice(v) || !sameSnapshot(snap, v))
          return `host value '${name}' differs from the recorded run`;
      }
      for (const c of this.#checks) {
        const node = order[c.step]!;
        const why = c.kernel.accepts?.(node, opsets[c.step]!, inputsOf(c), gpu);
        if (why !== undefined) return `${node.opType} '${node.name}' takes another path (${why})`;
      }
      const writes: Prepared["writes"][number][] = [];
      for (const { upload, check } of this.#hostData) {
        const node = order[upload.step]!;
        const data = check.kernel.hostData![upload.slot]!(node, inputsOf(check));
        if (data.byteLength !== upload.bytes)
          return `${node.opType} '${node.name}': host data of another size`;
        writes.push({ staging: upload.staging, data });
      }
      for (const [name, r] of this.#raw) {
        const v = values.get(name);
        const data = v && !isDevice(v) ? (v.data as ArrayBufferView) : undefined;
        if (!data || data.byteLength !== r.bytes) return `host value '${name}' changed size`;
        writes.push({ staging: r.staging, data });
      }
      return { values, writes };
    } catch (e) {
      // The node-by-node run that follows raises the op's own error if the feeds are invalid.
      return `a host step failed (${(e as Error).message})`;
    }
  }

  /** Step 6: the fetched device values from the staging buffer, host values from the run or the recording. */
  async #readOut(
    values: Map<string, RunValue>,
    timing?: { mappedAt: number; copyMs: number },
  ): Promise<Record<string, Tensor>> {
    const { outputs, staging, total } = this.#out;
    let bytes = new ArrayBuffer(0);
    if (staging && total > 0) {
      // The tape is submitted: the GPU works while the destination's pages are touched (readback.ts).
      bytes = prefaultedBuffer(total);
      try {
        await copyMappedInto(staging, bytes, timing);
      } catch (e) {
        throw new WebGpuError("replay", `mapping the outputs failed: ${(e as Error).message}`);
      }
    }
    const result: Record<string, Tensor> = {};
    for (const o of outputs) {
      if ("device" in o) {
        const { offset, type, dims } = o.device;
        const n = dims.reduce((a, b) => a * b, 1);
        result[o.name] = new Tensor(
          type,
          type === "float32" ? new Float32Array(bytes, offset, n) : new Int32Array(bytes, offset, n),
          dims,
        );
      } else {
        const v = resolve(o.host, values) as Tensor;
        // A recorded value is handed out again on every replay: a copy, so a caller may write to it.
        result[o.name] = "name" in o.host ? v : new Tensor(v.type, v.data.slice(), v.dims);
      }
    }
    return result;
  }
}

/**
 * Where a replayed run's wall time went: `hostMs` from the call to the submit (host steps, writes, encoding),
 * `waitMs` from there until the outputs' staging buffer was mapped (the GPU's work, touching the destination's
 * pages meanwhile, and the map), `copyMs` the copy out of it. For benches (bench/gpu-host-profile.ts --phases); nothing is measured without a listener.
 */
export interface ReplayPhases {
  hostMs: number;
  waitMs: number;
  copyMs: number;
}
let replayPhaseListener: ((p: ReplayPhases) => void) | undefined;
/** Sets (or with undefined clears) the process-wide listener of replayed runs' phases. */
export function onReplayPhases(listener: ((p: ReplayPhases) => void) | undefined): void {
  replayPhaseListener = listener;
}

function resolve(s: SlotSource, values: ReadonlyMap<string, RunValue>): RunValue | undefined {
  if (!("name" in s)) return s.value;
  const v = values.get(s.name);
  if (v === undefined) throw new WebGpuError("replay", `host value '${s.name}' has no value`);
  return v;
}

/** A data-dependent host value a replay would need but not compute (none in a well-formed capture). */
function unresolved(
  order: readonly Node[],
  capture: ReplayCapture,
  out: OutputLayout,
  feeds: ReadonlySet<string>,
): string | undefined {
  const known = new Set(feeds);
  const need = (s: SlotSource | undefined) => (s && "name" in s && !known.has(s.name) ? s.name : undefined);
  for (const p of capture.prologue) {
    for (const s of p.inputs) if (need(s)) return need(s);
    for (const o of order[p.step]!.outputs) if (o) known.add(o);
  }
  for (const c of capture.checks) for (const s of c.inputs) if (need(s)) return need(s);
  for (const name of [...capture.deciding.keys(), ...capture.raw.keys()]) if (!known.has(name)) return name;
  for (const o of out.outputs) if ("host" in o && need(o.host)) return need(o.host);
  return undefined;
}
