/**
 * Compiled compute pipelines, keyed by everything baked into their WGSL (kernel name, tile sizes, head size,
 * flags — never a runtime shape, which travels as a uniform). A kernel passes its key and a function that
 * generates the source; the source is generated and compiled only on a miss.
 */
import type { WebGpuDevice } from "./device.js";

export interface CachedPipeline {
  readonly key: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly module: GPUShaderModule;
}

export class PipelineCache {
  readonly gpu: WebGpuDevice;
  readonly #map = new Map<string, CachedPipeline>();
  compiled = 0;
  hits = 0;

  constructor(gpu: WebGpuDevice) {
    this.gpu = gpu;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The keys compiled so far (tests: which variant of a kernel ran). */
  keys(): string[] {
    return [...this.#map.keys()];
  }

  /**
   * The pipeline for `key`, compiling `source()` on a miss. Compilation errors surface as validation errors
   * at the next CommandRecorder.submit(), which names the kernel and quotes the WGSL compiler's messages.
   */
  get(key: string, source: () => string): CachedPipeline {
    const hit = this.#map.get(key);
    if (hit) {
      this.hits++;
      return hit;
    }
    this.gpu.checkAlive(key);
    const device = this.gpu.device;
    const module = device.createShaderModule({ label: key, code: source() });
    const pipeline = device.createComputePipeline({
      label: key,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const entry = { key, pipeline, layout: pipeline.getBindGroupLayout(0), module };
    this.#map.set(key, entry);
    this.compiled++;
    return entry;
  }

  /** WGSL compiler messages of a cached pipeline (for error reports). */
  async messages(key: string): Promise<string> {
    const entry = this.#map.get(key);
    if (!entry) return "";
    const info = await entry.module.getCompilationInfo();
    return info.messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`).join("\n");
  }

  /** Drops a pipeline (after a compile failure, so a fixed generator is not shadowed by the broken one). */
  delete(key: string): void {
    this.#map.delete(key);
  }
}
