/**
 * The CPU backend's output memory: float32 buffers in shared memory (so worker threads read and write them
 * in place — no per-call copies into scratch), handed to kernels through `allocFloat32` and taken back when
 * the plan says the value holding them is dead. Buckets by exact length: a transformer's intermediate
 * sizes repeat layer after layer, so after the first run of a shape a run allocates nothing large.
 *
 * Kernels may return views that share a buffer (Reshape, Identity, Split views…), so a run counts the live
 * values per buffer (`BufferLease`) and returns a buffer only when the last of them dies.
 */

/** Buffers below this many floats are plain arrays: pooling them saves nothing and SABs cost more. */
const MIN_POOLED_FLOATS = 1024;
/**
 * Free buffers kept at most (floats, 1 GiB): a session fed many different shapes would otherwise keep a
 * bucket for each; past the cap a returned buffer is left to the garbage collector.
 */
const MAX_FREE_FLOATS = 256 * 1024 * 1024;

export interface BufferPoolStats {
  /** Shared buffers created (misses), and floats they hold. */
  allocations: number;
  allocatedFloats: number;
  /** Requests served from the free lists. */
  reuses: number;
}

export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  /** Buffers this pool created, by their backing store, to the full-length view it handed out. */
  private readonly owned = new WeakMap<ArrayBufferLike, Float32Array>();
  readonly stats: BufferPoolStats = { allocations: 0, allocatedFloats: 0, reuses: 0 };
  private freeFloats = 0;

  constructor(private readonly maxFreeFloats = MAX_FREE_FLOATS) {}

  /** A buffer of `length` floats with unspecified contents: the kernel must write every element. */
  allocFloat32(length: number): Float32Array {
    if (length < MIN_POOLED_FLOATS) return new Float32Array(length);
    const reused = this.free.get(length)?.pop();
    if (reused) {
      this.freeFloats -= length;
      this.stats.reuses++;
      return reused;
    }
    const fresh = new Float32Array(new SharedArrayBuffer(length * 4));
    this.owned.set(fresh.buffer, fresh);
    this.stats.allocations++;
    this.stats.allocatedFloats += length;
    return fresh;
  }

  /** The pool's buffer behind `data`, if the pool created it. */
  ownerOf(data: ArrayBufferView): Float32Array | undefined {
    return this.owned.get(data.buffer);
  }

  /** Gives a buffer back for reuse; the caller guarantees no live value reads it any more. */
  recycle(buffer: Float32Array): void {
    if (this.freeFloats + buffer.length > this.maxFreeFloats) return;
    this.freeFloats += buffer.length;
    const list = this.free.get(buffer.length);
    if (list) list.push(buffer);
    else this.free.set(buffer.length, [buffer]);
  }

  /** Drops every free buffer (session release); buffers still leased are simply never recycled. */
  clear(): void {
    this.free.clear();
    this.freeFloats = 0;
  }
}

/** One run's leases on pool buffers: how many live values hold each. */
export class BufferLease {
  private readonly holders = new Map<Float32Array, number>();

  constructor(private readonly pool: BufferPool) {}

  /** A value now holds `data` (counted only when it lives in a pool buffer). */
  hold(data: ArrayBufferView): void {
    const owner = this.pool.ownerOf(data);
    if (owner) this.holders.set(owner, (this.holders.get(owner) ?? 0) + 1);
  }

  /** A value holding `data` died; the buffer goes back when no live value holds it. */
  drop(data: ArrayBufferView): void {
    const owner = this.pool.ownerOf(data);
    if (!owner) return;
    const n = (this.holders.get(owner) ?? 0) - 1;
    if (n > 0) this.holders.set(owner, n);
    else {
      this.holders.delete(owner);
      this.pool.recycle(owner);
    }
  }

  /** Whether `data` lives in a pool buffer (and so must be copied before it leaves the run). */
  pooled(data: ArrayBufferView): boolean {
    return this.pool.ownerOf(data) !== undefined;
  }
}
