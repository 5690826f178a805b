/**
 * The webgpu backend's per-session state: one device, its buffer pool and its pipeline cache. Kernels take a
 * WebGpuContext and a CommandRecorder; a run makes one recorder, records every kernel, and submits once.
 */
import { BufferPool } from "./buffer-pool.js";
import { createWebGpuDevice, type WebGpuDevice, type WebGpuDeviceOptions } from "./device.js";
import { PipelineCache } from "./pipeline-cache.js";
import {
  detectF16,
  type F16Support,
  type Precision,
  type ResolvedPrecision,
  resolvePrecision,
} from "./precision.js";
import { CommandRecorder, type RecorderOptions } from "./recorder.js";

export class WebGpuContext {
  readonly gpu: WebGpuDevice;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  /** What fp16 can use here (set by create(); kernels pick tensor-core or SIMT fp16 from it). */
  f16: F16Support | undefined;

  constructor(gpu: WebGpuDevice) {
    this.gpu = gpu;
    this.pool = new BufferPool(gpu);
    this.pipelines = new PipelineCache(gpu);
  }

  static async create(options: WebGpuDeviceOptions = {}): Promise<WebGpuContext> {
    const ctx = new WebGpuContext(await createWebGpuDevice(options));
    ctx.f16 = await detectF16(ctx.gpu);
    return ctx;
  }

  /** The precision a request gets on this device (fp16 → SIMT fp16 or fp32, with a one-line notice). */
  resolvePrecision(precision: Precision, asker?: string): Promise<ResolvedPrecision> {
    return resolvePrecision(this.gpu, precision, asker);
  }

  recorder(options?: RecorderOptions): CommandRecorder {
    return new CommandRecorder(this.pool, this.pipelines, options);
  }

  /** Destroys every pooled buffer and the device. */
  dispose(): void {
    this.pool.dispose();
    this.gpu.dispose();
  }
}
