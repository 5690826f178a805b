/**
 * One run's device state: its recorder, the buffers its values hold (counted, since aliases share one buffer),
 * and the staging buffers of uploads made while recording.
 *
 * Why uploads go through staging: queue.writeBuffer executes at once, before the run's still-unsubmitted
 * command buffer. A pooled buffer released earlier in this run may still be written by a recorded dispatch,
 * so writing it directly would be overwritten later. Instead the bytes go into a staging buffer (a usage no
 * dispatch binds) and a copy recorded in the encoder moves them, in order. Staging buffers return to the pool
 * only after the recording is submitted.
 */
import type { Tensor } from "../../../ir/tensor.js";
import { Usage } from "../buffer-pool.js";
import type { WebGpuContext } from "../context.js";
import { castF16ToF32, castF32ToF16 } from "../kernels/cast.js";
import type { CommandRecorder, KernelTiming } from "../recorder.js";
import type { CommandTape } from "../tape.js";
import type { HostData } from "./kernel-context.js";
import { type DeviceDType, DeviceValue, storageBytes } from "./values.js";

/** Upload staging buffers: written by the host, copied from (no kernel binds one). */
export const STAGING_USAGE = Usage.COPY_SRC | Usage.COPY_DST;

/** A host → device upload: the value's buffer, and the staging buffer its bytes went through (none if empty). */
export interface Upload {
  readonly buffer: GPUBuffer;
  readonly staging: GPUBuffer | undefined;
  readonly bytes: number;
}

export class RunState {
  rec: CommandRecorder;
  readonly #held = new Map<GPUBuffer, number>();
  #staging: GPUBuffer[] = [];
  /** Host tensors uploaded during this run (feeds, host-computed values), freed at its end. */
  readonly uploads = new Map<Tensor, DeviceValue>();
  /** Float32 feeds: on the device as soon as a GPU kernel reads them. */
  readonly deviceFeeds = new Set<Tensor>();
  /**
   * float16 / float64 host tensors that are model data rather than host chains: such feeds, and what the CPU
   * computed from them or from initializers (prepared-graph.ts's dtypeMiss: no kernel takes their dtype).
   */
  readonly modelData = new Set<Tensor>();
  readonly #temps: GPUBuffer[] = [];
  /** Host-data uploads of this run by kernel function and share name (GpuKernelDef.hostDataShare). */
  readonly sharedHostData = new Map<HostData, Map<string, GPUBuffer>>();
  readonly #converted = new Map<DeviceValue, DeviceValue>();

  /** Per-kernel GPU times of the run's submits (profiled runs only). */
  readonly timings: KernelTiming[] = [];
  /** Submits before the last one (read-backs in the middle of the run): a replay plan needs none. */
  flushes = 0;

  /** `tape`: the run's commands are also written down for replay (the first recording's only). */
  constructor(
    readonly gpu: WebGpuContext,
    private readonly persistent: ReadonlySet<GPUBuffer>,
    private readonly profile = false,
    tape?: CommandTape,
  ) {
    this.rec = gpu.recorder({ label: "mhafuse run", profile, tape });
  }

  /** A pooled buffer for a value; `f16`: a float32 value stored as f16 (fp16 mode). */
  alloc(dims: readonly number[], type: DeviceDType = "float32", f16 = false): DeviceValue {
    const half = f16 && type === "float32";
    const n = dims.reduce((a, b) => a * b, 1);
    return new DeviceValue(type, dims, this.gpu.pool.acquire(Math.max(4, storageBytes(n, half))), half);
  }

  /**
   * `v` in the other float storage (f32 ↔ f16), recorded as a cast into a buffer freed when the run ends.
   * Cached per value object: a weight or feed read by many kernels is converted once per run.
   */
  convert(v: DeviceValue, f16: boolean): DeviceValue {
    if (v.type !== "float32" || v.f16 === f16) return v;
    const hit = this.#converted.get(v);
    if (hit) return hit;
    const out = this.alloc(v.dims, "float32", f16);
    this.temp(out.buffer);
    (f16 ? castF32ToF16 : castF16ToF32)(this.gpu, this.rec, v, out);
    this.#converted.set(v, out);
    return out;
  }

  /** Bytes into a fresh storage buffer, through staging and a recorded copy (see the header). */
  upload(data: Float32Array | Int32Array): Upload {
    const bytes = Math.max(4, data.byteLength);
    const dest = this.gpu.pool.acquire(bytes);
    if (data.byteLength === 0) return { buffer: dest, staging: undefined, bytes: 0 };
    const staging = this.gpu.pool.acquire(bytes, STAGING_USAGE);
    this.#staging.push(staging);
    this.gpu.pool.write(staging, data);
    this.rec.copy(staging, 0, dest, 0, data.byteLength);
    return { buffer: dest, staging, bytes: data.byteLength };
  }

  /** A buffer freed when the run ends (lengths, indices, uploaded host values). */
  temp(buf: GPUBuffer): GPUBuffer {
    this.#temps.push(buf);
    return buf;
  }

  hold(buf: GPUBuffer): void {
    if (this.persistent.has(buf)) return;
    this.#held.set(buf, (this.#held.get(buf) ?? 0) + 1);
  }

  drop(buf: GPUBuffer): void {
    const n = this.#held.get(buf);
    if (n === undefined) return;
    if (n > 1) this.#held.set(buf, n - 1);
    else {
      this.#held.delete(buf);
      this.gpu.pool.release(buf);
    }
  }

  /** Submits what is recorded and starts a new recording (before a read-back in the middle of a run). */
  async flush(): Promise<void> {
    const rec = this.rec;
    this.flushes++;
    this.rec = this.gpu.recorder({ label: "mhafuse run (after a read-back)", profile: this.profile });
    await this.submit(rec);
  }

  async submit(rec: CommandRecorder = this.rec): Promise<void> {
    await rec.submit();
    this.timings.push(...rec.timings);
    for (const s of this.#staging) this.gpu.pool.release(s);
    this.#staging = [];
  }

  /** Returns every buffer the run still holds (call after the last submit). */
  finish(): void {
    for (const buf of this.#held.keys()) this.gpu.pool.release(buf);
    this.#held.clear();
    for (const buf of this.#temps) this.gpu.pool.release(buf);
    this.#temps.length = 0;
    for (const s of this.#staging) this.gpu.pool.release(s);
    this.#staging = [];
    this.#converted.clear();
  }
}
