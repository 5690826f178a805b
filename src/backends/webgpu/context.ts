/**
 * The webgpu backend's per-session state: one device, its buffer pool and its pipeline cache. Kernels take a
 * WebGpuContext and a CommandRecorder; a run makes one recorder, records every kernel, and submits once.
 */
import { BufferPool } from "./buffer-pool.js";
import { createWebGpuDevice, type WebGpuDevice, type WebGpuDeviceOptions } from "./device.js";
import { PipelineCache } from "./pipeline-cache.js";
import { CommandRecorder, type RecorderOptions } from "./recorder.js";

export class WebGpuContext {
  readonly gpu: WebGpuDevice;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;

  constructor(gpu: WebGpuDevice) {
    this.gpu = gpu;
    this.pool = new BufferPool(gpu);
    this.pipelines = new PipelineCache(gpu);
  }

  static async create(options: WebGpuDeviceOptions = {}): Promise<WebGpuContext> {
    return new WebGpuContext(await createWebGpuDevice(options));
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
