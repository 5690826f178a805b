/**
 * A size-bucketed pool of GPU buffers, and the two explicit edges of device memory: upload (host → GPU) and
 * readback (GPU → host). Buffers are never freed on release, only returned to their bucket: creating and
 * destroying buffers per op costs more than the kernels of a small model. Reuse after release is safe without
 * waiting for the GPU because queue operations (writeBuffer, submits) execute in order.
 */
import { assert } from "../../errors.js";
import { type WebGpuDevice, WebGpuError } from "./device.js";

/** GPUBufferUsage / GPUMapMode values (fixed by the spec); Node has no such globals unless they are installed. */
export const Usage = {
  MAP_READ: 1,
  COPY_SRC: 4,
  COPY_DST: 8,
  UNIFORM: 64,
  STORAGE: 128,
  QUERY_RESOLVE: 512,
} as const;
export const STORAGE_USAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;
const MAP_READ = 1;

/**
 * Bucket size of a request: powers of two and 1.5 × powers of two (waste <= 33%, typically far less), at least
 * 256 bytes. Few buckets means high reuse between ops whose tensors differ slightly in size.
 */
export function bucketSize(bytes: number): number {
  const n = Math.max(256, Math.ceil(bytes));
  const p = 2 ** Math.ceil(Math.log2(n));
  return (p * 3) / 4 >= n && p >= 512 ? (p * 3) / 4 : p;
}

export interface PoolStats {
  created: number;
  reused: number;
  /** Bytes in buffers the pool has created and not destroyed (live or idle). */
  bytesAllocated: number;
}

export class BufferPool {
  readonly gpu: WebGpuDevice;
  readonly #free = new Map<string, GPUBuffer[]>();
  readonly #owned = new Set<GPUBuffer>();
  readonly stats: PoolStats = { created: 0, reused: 0, bytesAllocated: 0 };

  constructor(gpu: WebGpuDevice) {
    this.gpu = gpu;
  }

  /** A buffer of at least `bytes` bytes (its `size` is the bucket's). Contents are undefined. */
  acquire(bytes: number, usage: number = STORAGE_USAGE): GPUBuffer {
    const size = bucketSize(bytes);
    const max = this.gpu.limits.maxBufferSize;
    if (size > max)
      throw new WebGpuError("buffer", `a buffer of ${bytes} bytes exceeds the device's maxBufferSize ${max}`);
    const key = `${usage}:${size}`;
    const list = this.#free.get(key);
    const reused = list?.pop();
    if (reused) {
      this.stats.reused++;
      return reused;
    }
    this.gpu.checkAlive("buffer");
    const buf = this.gpu.device.createBuffer({ size, usage });
    this.#owned.add(buf);
    this.stats.created++;
    this.stats.bytesAllocated += size;
    return buf;
  }

  /** Returns a buffer to its bucket. Work already recorded or submitted that uses it still sees its contents. */
  release(buf: GPUBuffer): void {
    assert(this.#owned.has(buf), "BufferPool.release: buffer not from this pool");
    const key = `${buf.usage}:${buf.size}`;
    let list = this.#free.get(key);
    if (!list) this.#free.set(key, (list = []));
    assert(!list.includes(buf), "BufferPool.release: buffer released twice");
    list.push(buf);
  }

  /**
   * Takes an idle buffer out of its bucket for good (a replay plan keeps the buffers its recording names, so
   * no other run, prepare or plan is handed them); `release` gives it back. False when `buf` is not idle —
   * held by someone (weights) or never returned — and so cannot be reserved.
   */
  reserve(buf: GPUBuffer): boolean {
    const list = this.#free.get(`${buf.usage}:${buf.size}`);
    const at = list?.indexOf(buf) ?? -1;
    if (at < 0) return false;
    list!.splice(at, 1);
    return true;
  }

  /** A pooled storage buffer holding `data` (its bytes are written with queue.writeBuffer, 4-byte padded). */
  upload(data: ArrayBufferView, usage: number = STORAGE_USAGE): GPUBuffer {
    const buf = this.acquire(Math.max(4, data.byteLength), usage);
    this.write(buf, data);
    return buf;
  }

  /** Writes `data` at `byteOffset` of `buf` (queue-ordered before any later submit). */
  write(buf: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 !== 0) {
      // writeBuffer wants a multiple of 4 bytes; int8/float16 tensors of odd length get a zero tail.
      const padded = new Uint8Array((bytes.byteLength + 3) & ~3);
      padded.set(bytes);
      bytes = padded;
    }
    if (bytes.byteLength > 0) this.gpu.device.queue.writeBuffer(buf, byteOffset, bytes);
  }

  /**
   * Copies `bytes` bytes from `buf` (at `byteOffset`) back to the host. Waits for all work submitted before
   * it; this is the one synchronisation point of a run and belongs at its end.
   */
  async readback(buf: GPUBuffer, bytes: number, byteOffset = 0): Promise<ArrayBuffer> {
    this.gpu.checkAlive("readback");
    const size = (bytes + 3) & ~3;
    const staging = this.acquire(size, Usage.MAP_READ | Usage.COPY_DST);
    const enc = this.gpu.device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, byteOffset, staging, 0, size);
    this.gpu.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(MAP_READ, 0, size);
      return staging.getMappedRange(0, size).slice(0, bytes);
    } catch (e) {
      throw new WebGpuError("readback", `mapping the staging buffer failed: ${(e as Error).message}`);
    } finally {
      if (staging.mapState === "mapped") staging.unmap();
      this.release(staging);
    }
  }

  async readFloat32(buf: GPUBuffer, count: number, elementOffset = 0): Promise<Float32Array> {
    return new Float32Array(await this.readback(buf, count * 4, elementOffset * 4));
  }

  /** Destroys every idle buffer (buffers still held by callers stay valid). */
  trim(): void {
    for (const list of this.#free.values())
      for (const b of list) {
        this.#owned.delete(b);
        this.stats.bytesAllocated -= b.size;
        b.destroy();
      }
    this.#free.clear();
  }

  /** Destroys every buffer the pool ever created, held or idle. */
  dispose(): void {
    for (const b of this.#owned) b.destroy();
    this.#owned.clear();
    this.#free.clear();
    this.stats.bytesAllocated = 0;
  }
}
