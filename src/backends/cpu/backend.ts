/**
 * The CPU backend: owns its thread count, its kernel choices, its worker threads and its output buffers.
 * `prepare` marks the weights immutable and, on the native kernels, packs every constant GEMM weight into the
 * panels the runs will read (prepack.ts: the first run packs nothing), then returns a prepared graph; `dispose` stops its workers and drops its pooled buffers.
 * Idle workers never keep the process alive, so an undisposed backend does not block exit either.
 */
import type { Graph } from "../../ir/graph.js";
import type { Backend, ExecutionPlan, PreparedGraph } from "../backend.js";
import { BufferLease, BufferPool } from "./buffer-pool.js";
import { type CpuCompute, cpuCompute } from "./compute.js";
import {
  type CpuKernels,
  defaultAttentionKernel,
  defaultCpuKernels,
  defaultGemmKernel,
  defaultThreads,
  type KernelChoice,
} from "./defaults.js";
import { markImmutable } from "./immutable.js";
import { type NativeKernels, nativeKernels } from "./native/index.js";
import { nativeCompute } from "./native-compute.js";
import { type CpuTask, newCpuPool } from "./pool.js";
import { prepackWeights } from "./prepack.js";
import { CpuPreparedGraph } from "./prepared-graph.js";
import type { ThreadPool } from "./thread-pool.js";

export interface CpuBackendOptions {
  /** Threads for parallel kernels, the calling thread included (default: MHAFUSE_THREADS, else all cores). */
  threads?: number;
  /** GEMM kernel: "auto" (WebAssembly SIMD where available) or "js" (default: "js" if MHAFUSE_NO_WASM). */
  gemmKernel?: KernelChoice;
  /** Attention kernel, likewise (default: "js" if MHAFUSE_NO_WASM or MHAFUSE_ATTENTION_KERNEL=js). */
  attentionKernel?: KernelChoice;
  /**
   * Kernel family (default: MHAFUSE_CPU_KERNELS, else "native"): "native" runs GEMM, attention, norms and
   * the profiled elementwise ops on the C++ addon when it loads (else "wasm", after a one-line notice);
   * "wasm" and "js" never load it. A gemmKernel/attentionKernel of "js" keeps that primitive on plain JS.
   */
  cpuKernels?: CpuKernels;
  /**
   * Runs take each graph's bound plan (bound-plan.ts: node calls resolved once per shape and kept; default
   * true). false runs node by node, resolving every call each run — for A/B and as the reference in tests.
   */
  bind?: boolean;
  /**
   * Pack the native GEMM's constant weights when a graph is prepared (prepack.ts; default true). false packs
   * each on its first run instead — for A/B and as the reference in tests; the panels are the same.
   */
  prepack?: boolean;
}

/**
 * A backend dropped without dispose() (a session never released) still stops its workers once it is
 * garbage-collected, so creating sessions in a loop does not accumulate idle threads.
 */
const abandoned = new FinalizationRegistry<ThreadPool<CpuTask>>((pool) => {
  void pool.close();
});

export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly threads: number;
  readonly gemmKernel: KernelChoice;
  readonly attentionKernel: KernelChoice;
  /** The native kernels in use, or undefined when this backend runs the WebAssembly or JS kernels. */
  readonly native: NativeKernels | undefined;
  readonly bind: boolean;
  readonly prepack: boolean;
  readonly buffers = new BufferPool();
  /** This backend's workers: every parallel GEMM, attention and map job of its graphs runs on them. */
  readonly pool: ThreadPool<CpuTask> = newCpuPool();

  constructor(options: CpuBackendOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? defaultThreads()));
    const family = options.cpuKernels ?? defaultCpuKernels();
    const js: KernelChoice | undefined = family === "js" ? "js" : undefined;
    this.gemmKernel = options.gemmKernel ?? js ?? defaultGemmKernel();
    this.attentionKernel = options.attentionKernel ?? js ?? defaultAttentionKernel();
    this.native = family === "native" ? nativeKernels() : undefined;
    this.bind = options.bind ?? true;
    this.prepack = options.prepack ?? true;
    abandoned.register(this, this.pool, this);
  }

  async prepare(graph: Graph, plan: ExecutionPlan): Promise<PreparedGraph> {
    // Initializers are never written while the graph runs, so kernels may cache what they derive from them.
    for (const t of graph.initializers.values()) markImmutable(t.data);
    if (this.prepack) this.packWeights(graph);
    const base = {
      threads: this.threads,
      gemmKernel: this.gemmKernel,
      attentionKernel: this.attentionKernel,
      pool: this.pool,
    };
    const pooledCompute = this.withNative(
      cpuCompute({ ...base, allocFloat32: (n) => this.buffers.allocFloat32(n) }),
    );
    const freshCompute = this.withNative(cpuCompute(base));
    return new CpuPreparedGraph(
      graph,
      plan,
      {
        pooled: () => ({ compute: pooledCompute, lease: new BufferLease(this.buffers) }),
        unpooled: () => freshCompute,
      },
      this.bind,
    );
  }

  /**
   * Packs `graph`'s constant GEMM weights for the native GEMM (prepare does; an engine may call it earlier,
   * e.g. when a session is created) and returns how many weight views the graph has; 0 without the native
   * GEMM. Initializers are marked immutable here too: the packed panels are cached against their arrays.
   */
  packWeights(graph: Graph): number {
    if (!this.native || this.gemmKernel === "js") return 0;
    for (const t of graph.initializers.values()) markImmutable(t.data);
    return prepackWeights(this.native, graph);
  }

  /** This backend's primitives with fresh output arrays: for synchronous tools (runGraph, profiles). */
  compute(): CpuCompute {
    const base = {
      threads: this.threads,
      gemmKernel: this.gemmKernel,
      attentionKernel: this.attentionKernel,
    };
    return this.withNative(cpuCompute({ ...base, pool: this.pool }));
  }

  /** The native primitives over `fallback` when this backend runs native kernels. */
  private withNative(fallback: CpuCompute): CpuCompute {
    if (!this.native) return fallback;
    return nativeCompute(this.native, fallback, {
      gemm: this.gemmKernel !== "js",
      attention: this.attentionKernel !== "js",
    });
  }

  /** Stops the workers (a later run would start them again) and drops the free pooled buffers. */
  async dispose(): Promise<void> {
    abandoned.unregister(this);
    this.buffers.clear();
    await this.pool.close();
  }
}
