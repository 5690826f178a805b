/**
 * The CPU backend: owns its thread count, its kernel choices and its output buffers. `prepare` marks the
 * weights immutable (so the GEMM packs each weight once, on first use, and caches the packed panels) and
 * returns a prepared graph; `dispose` drops the buffers it pooled.
 */
import type { Graph } from "../../ir/graph.js";
import type { Backend, ExecutionPlan, PreparedGraph } from "../backend.js";
import { BufferLease, BufferPool } from "./buffer-pool.js";
import { cpuCompute } from "./compute.js";
import { markImmutable } from "./immutable.js";
import { CpuPreparedGraph } from "./prepared-graph.js";
import { cpuThreads } from "./thread-pool.js";

export interface CpuBackendOptions {
  /** Threads for parallel kernels, the calling thread included (default: MHAFUSE_THREADS, else all cores). */
  threads?: number;
}

export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly threads: number;
  readonly buffers = new BufferPool();
  private disposed = false;

  constructor(options: CpuBackendOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? cpuThreads()));
  }

  async prepare(graph: Graph, plan: ExecutionPlan): Promise<PreparedGraph> {
    // Initializers are never written while the graph runs, so kernels may cache what they derive from them.
    for (const t of graph.initializers.values()) markImmutable(t.data);
    const threads = this.threads;
    const pooledCompute = cpuCompute({ threads, allocFloat32: (n) => this.buffers.allocFloat32(n) });
    const freshCompute = cpuCompute({ threads });
    return new CpuPreparedGraph(graph, plan, {
      pooled: () => ({ compute: pooledCompute, lease: new BufferLease(this.buffers) }),
      unpooled: () => freshCompute,
    });
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.buffers.clear();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }
}
