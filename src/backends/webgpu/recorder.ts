/**
 * Records every dispatch of one call into one command encoder and submits it once: the GPU sees a single
 * command buffer per run instead of one per op. Host cost per dispatch is what limits small models (measured on
 * the H200: ~120 µs of host time per dispatch against ~30 µs of GPU time at BERT-base [1,128]), so a dispatch
 * is three calls into Dawn: consecutive dispatches share one compute pass (ended only for copies, or per
 * dispatch when profiling so timestamp queries bracket each kernel), uniform blocks are slices of one arena
 * written with a single writeBuffer at submit, and bind groups are cached by their layout and resources — a
 * run that gets the same pool buffers as the last one (the steady state of a session) creates none. Validation
 * and WGSL compile errors of the whole recording are caught by one error scope and rethrown from submit() as
 * WebGpuError naming the kernel.
 *
 * Every command goes through the recorder (dispatch, copy, clear; there is no raw encoder access), so that with
 * `tape` set it is also written down for replay (./tape.ts).
 */
import { type BufferPool, Usage } from "./buffer-pool.js";
import { WebGpuError } from "./device.js";
import type { CachedPipeline, PipelineCache } from "./pipeline-cache.js";
import type { CommandTape } from "./tape.js";

/** A buffer bound whole, or a byte range of one. */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export interface KernelTiming {
  label: string;
  /** The graph node the dispatch belongs to (set by the graph backend through `node`). */
  node?: string;
  /** GPU time between the pass's begin and end timestamps, in nanoseconds. */
  ns: number;
}

export interface RecorderOptions {
  /** Bracket each dispatch with timestamp queries (only where the device has timestamp-query). */
  profile?: boolean;
  label?: string;
  /** Also write every command down here, for replay (not with `profile`: its passes carry timestamp queries). */
  tape?: CommandTape;
}

/** Dispatches per profiled submit (2 timestamps each). Later dispatches of the same recording run unprofiled. */
const MAX_PROFILED = 512;

/** Bytes of one uniform arena buffer (slices of minUniformBufferOffsetAlignment, usually 256 bytes each). */
const ARENA_BYTES = 64 * 1024;
/** Bind groups kept per device before the cache starts over (a cache miss only costs a createBindGroup). */
const BIND_GROUP_CACHE_MAX = 8192;

/** Stable ids of GPU objects for bind-group cache keys. */
const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;
function idOf(o: object): number {
  let id = objectIds.get(o);
  if (id === undefined) {
    id = nextObjectId++;
    objectIds.set(o, id);
  }
  return id;
}

/** Per device: bind groups by layout and resources. */
const bindGroupCaches = new WeakMap<GPUDevice, Map<string, GPUBindGroup>>();

interface Arena {
  buffer: GPUBuffer;
  data: Uint8Array;
  used: number;
}

export class CommandRecorder {
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly #device: GPUDevice;
  readonly #encoder: GPUCommandEncoder;
  readonly #arenas: Arena[] = [];
  readonly #temps: GPUBuffer[] = [];
  readonly #bindGroups: Map<string, GPUBindGroup>;
  #pass: GPUComputePassEncoder | undefined;
  readonly #labels: string[] = [];
  readonly #nodes: (string | undefined)[] = [];
  /** The graph node whose dispatches are being recorded (profiles name it). */
  node: string | undefined;
  readonly #keys = new Set<string>();
  readonly #querySet: GPUQuerySet | undefined;
  readonly #tape: CommandTape | undefined;
  #submitted = false;
  /** Filled by submit() when profiling. */
  timings: KernelTiming[] = [];

  constructor(pool: BufferPool, pipelines: PipelineCache, options: RecorderOptions = {}) {
    this.pool = pool;
    this.pipelines = pipelines;
    const gpu = pool.gpu;
    gpu.checkAlive(options.label ?? "record");
    this.#device = gpu.device;
    // One scope per recording: validation errors of pipeline creation, bind groups and passes all land here.
    this.#device.pushErrorScope("validation");
    this.#encoder = this.#device.createCommandEncoder({ label: options.label });
    let cache = bindGroupCaches.get(this.#device);
    if (!cache) {
      cache = new Map();
      bindGroupCaches.set(this.#device, cache);
    }
    this.#bindGroups = cache;
    if (options.profile && gpu.features.timestampQuery)
      this.#querySet = this.#device.createQuerySet({ type: "timestamp", count: 2 * MAX_PROFILED });
    if (options.tape && options.profile)
      throw new WebGpuError(options.label ?? "record", "a profiled recording cannot be taped for replay");
    this.#tape = options.tape;
  }

  get dispatches(): number {
    return this.#labels.length;
  }

  /** A buffer-to-buffer copy between dispatches (it keeps queue order with the passes around it). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    if (this.#submitted) throw new WebGpuError("copy", "copy after submit");
    this.#endPass();
    this.#encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
    this.#tape?.copy(src, srcOffset, dst, dstOffset, size);
  }

  /** Zeroes `size` bytes of `buffer` from `offset`, in order with the dispatches around it. */
  clear(buffer: GPUBuffer, offset: number, size: number): void {
    if (this.#submitted) throw new WebGpuError("clear", "clear after submit");
    this.#endPass();
    this.#encoder.clearBuffer(buffer, offset, size);
    this.#tape?.clear(buffer, offset, size);
  }

  /**
   * A scratch storage buffer for this recording, returned to the pool after submit: within the one command
   * buffer its uses are ordered, and no host write (queued before the command buffer) can reach it meanwhile.
   */
  temp(bytes: number): GPUBuffer {
    const b = this.pool.acquire(Math.max(4, bytes));
    this.#temps.push(b);
    return b;
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = undefined;
  }

  /** A slice of the uniform arena holding `uniforms`; the arena is written to the GPU once, at submit. */
  #uniformSlice(uniforms: ArrayBuffer): { buffer: GPUBuffer; offset: number; size: number } {
    const align = this.#device.limits.minUniformBufferOffsetAlignment;
    const size = uniforms.byteLength;
    let arena = this.#arenas[this.#arenas.length - 1];
    if (!arena || arena.used + size > ARENA_BYTES) {
      const bytes = Math.max(ARENA_BYTES, size);
      arena = {
        buffer: this.pool.acquire(bytes, Usage.UNIFORM | Usage.COPY_DST),
        data: new Uint8Array(bytes),
        used: 0,
      };
      this.#arenas.push(arena);
    }
    const offset = arena.used;
    arena.data.set(new Uint8Array(uniforms), offset);
    arena.used = Math.ceil((offset + size) / align) * align;
    return { buffer: arena.buffer, offset, size };
  }

  #bindGroup(kernel: CachedPipeline, entries: GPUBindGroupEntry[]): GPUBindGroup {
    let key = `${idOf(kernel.layout)}`;
    for (const e of entries) {
      const r = e.resource as { buffer: GPUBuffer; offset?: number; size?: number };
      key += `|${idOf(r.buffer)}:${r.offset ?? 0}:${r.size ?? -1}`;
    }
    let group = this.#bindGroups.get(key);
    if (!group) {
      if (this.#bindGroups.size >= BIND_GROUP_CACHE_MAX) this.#bindGroups.clear();
      group = this.#device.createBindGroup({ layout: kernel.layout, entries });
      this.#bindGroups.set(key, group);
    }
    return group;
  }

  /**
   * Records one dispatch. Binding 0 is the uniform block when `uniforms` is given, storage buffers follow
   * in order from binding 1 (from 0 without uniforms), exactly as the kernel's WGSL declares them.
   */
  dispatch(
    kernel: CachedPipeline,
    buffers: readonly Binding[],
    uniforms: ArrayBuffer | undefined,
    workgroups: readonly [number, number?, number?],
    label: string = kernel.key,
  ): void {
    if (this.#submitted) throw new WebGpuError(label, "dispatch after submit");
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.#device.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max)
      throw new WebGpuError(
        label,
        `dispatch [${x}, ${y}, ${z}] exceeds maxComputeWorkgroupsPerDimension ${max}`,
      );
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (uniforms) entries.push({ binding: binding++, resource: this.#uniformSlice(uniforms) });
    for (const b of buffers)
      entries.push({ binding: binding++, resource: "size" in b && "usage" in b ? { buffer: b } : b });
    const bindGroup = this.#bindGroup(kernel, entries);
    const index = this.#labels.length;
    if (this.#querySet && index < MAX_PROFILED) {
      // Profiled: a pass per dispatch, bracketed by its two timestamps.
      this.#endPass();
      const pass = this.#encoder.beginComputePass({
        timestampWrites: {
          querySet: this.#querySet,
          beginningOfPassWriteIndex: 2 * index,
          endOfPassWriteIndex: 2 * index + 1,
        },
      });
      pass.setPipeline(kernel.pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y, z);
      pass.end();
    } else {
      this.#pass ??= this.#encoder.beginComputePass();
      this.#pass.setPipeline(kernel.pipeline);
      this.#pass.setBindGroup(0, bindGroup);
      this.#pass.dispatchWorkgroups(x, y, z);
    }
    if (this.#tape) {
      const used = entries.map((e) => (e.resource as { buffer: GPUBuffer }).buffer);
      this.#tape.dispatch(kernel.pipeline, bindGroup, used, x, y, z);
    }
    this.#labels.push(label);
    this.#nodes.push(this.node);
    this.#keys.add(kernel.key);
  }

  /**
   * Submits the recording as one command buffer. Resolves once it is queued (or, when profiling, once the GPU
   * has finished and `timings` is filled). Rejects with WebGpuError on any validation or compile error.
   */
  async submit(): Promise<void> {
    if (this.#submitted) throw new WebGpuError("submit", "a recording is submitted once");
    this.#submitted = true;
    this.#endPass();
    // Every uniform block of the recording, one queue write per arena, ordered before the command buffer.
    for (const a of this.#arenas) this.#device.queue.writeBuffer(a.buffer, 0, a.data, 0, a.used);
    let resolve: GPUBuffer | undefined;
    let staging: GPUBuffer | undefined;
    const profiled = Math.min(this.#labels.length, MAX_PROFILED);
    if (this.#querySet && profiled > 0) {
      const bytes = 16 * profiled;
      resolve = this.pool.acquire(bytes, Usage.QUERY_RESOLVE | Usage.COPY_SRC);
      staging = this.pool.acquire(bytes, Usage.MAP_READ | Usage.COPY_DST);
      this.#encoder.resolveQuerySet(this.#querySet, 0, 2 * profiled, resolve, 0);
      this.#encoder.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
    }
    this.#device.queue.submit([this.#encoder.finish()]);
    for (const a of this.#arenas) this.pool.release(a.buffer);
    for (const b of this.#temps) this.pool.release(b);
    const error = await this.#device.popErrorScope();
    if (error) {
      const compiler: string[] = [];
      for (const key of this.#keys) {
        const m = await this.pipelines.messages(key);
        if (m.includes("error")) {
          compiler.push(`${key}:\n${m}`);
          this.pipelines.delete(key);
        }
      }
      this.#querySet?.destroy();
      throw new WebGpuError(
        this.#labels.join(", ") || "submit",
        `${error.message}${compiler.length ? `\nWGSL compiler:\n${compiler.join("\n")}` : ""}`,
      );
    }
    if (resolve && staging) {
      try {
        await staging.mapAsync(1, 0, 16 * profiled);
        const t = new BigUint64Array(staging.getMappedRange(0, 16 * profiled).slice(0));
        staging.unmap();
        this.timings = this.#labels
          .slice(0, profiled)
          .map((label, i) => ({ label, node: this.#nodes[i], ns: Number(t[2 * i + 1]! - t[2 * i]!) }));
      } finally {
        this.pool.release(resolve);
        this.pool.release(staging);
        this.#querySet!.destroy();
      }
    }
  }

  /** Resolves when all work submitted so far has finished on the GPU. */
  async done(): Promise<void> {
    await this.#device.queue.onSubmittedWorkDone();
  }
}
