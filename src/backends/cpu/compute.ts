/**
 * The CPU backend's primitives for the op contracts (src/ops/compute.ts): the blocked WebAssembly SIMD
 * GEMM and the flash-style attention core, both split over the backend's thread pool when a problem is
 * large enough to repay the hand-off.
 */

import type { AttentionArgs } from "../../ops/attention-args.js";
import type { OpCompute } from "../../ops/compute.js";
import type { GemmProblem } from "../../ops/gemm-problem.js";
import { attentionProblemsAsync, runAttentionProblems } from "./attention-parallel.js";
import type { KernelChoice } from "./defaults.js";
import { gemmBatchAsync, gemmBatchParallel } from "./gemm-parallel.js";
import { type MapName, mapAsync } from "./map-parallel.js";
import type { NativeKernels } from "./native/index.js";
import { type CpuTask, cpuPool } from "./pool.js";
import type { ThreadPool } from "./thread-pool.js";

export interface CpuComputeOptions {
  /** Threads a parallel kernel may use, the calling thread included. */
  threads: number;
  gemmKernel?: KernelChoice;
  attentionKernel?: KernelChoice;
  /** The workers (default: the process-wide pool). */
  pool?: ThreadPool<CpuTask>;
  /** Where float32 outputs come from (the backend's buffer pool); fresh arrays when absent. */
  allocFloat32?: (length: number) => Float32Array;
}

/** The CPU primitives, plus what only CPU kernels use: the thread count and work run off this thread. */
export interface CpuCompute extends OpCompute {
  readonly threads: number;
  /** The native kernels when the backend runs on them (its elementwise and norm kernels use them directly). */
  readonly native?: NativeKernels;
  /** GEMM problems the native kernel takes run there (so a bound plan may call it directly). */
  readonly gemmOnNative?: boolean;
  /** Attention problems run on the native kernels (captured even where they would run on this thread). */
  readonly attentionOnNative?: boolean;
  /** Runs the GEMMs on the pool's workers while the caller awaits (its event loop stays free). */
  gemmAsync(problems: readonly GemmProblem[]): Promise<void>;
  /** Runs attention problems on the pool's workers while the caller awaits. */
  attentionAsync(problems: readonly AttentionArgs[]): Promise<void>;
  /** Runs attention problems here (over the pool when large), blocking. */
  attentionSync(problems: readonly AttentionArgs[]): void;
  /** y = map(x), chunked over the pool's workers while the caller awaits. */
  mapAsync(map: MapName, x: Float32Array, y: Float32Array): Promise<void>;
}

export function cpuCompute(opts: CpuComputeOptions): CpuCompute {
  const { threads } = opts;
  const pool = opts.pool ?? cpuPool;
  const gemmOpts = { threads, kernel: opts.gemmKernel, pool };
  const attentionOpts = { threads, kernel: opts.attentionKernel, pool };
  return {
    threads,
    gemm: (problems) => gemmBatchParallel([...problems], gemmOpts),
    gemmAsync: (problems) => gemmBatchAsync([...problems], gemmOpts),
    attention: (args) => {
      runAttentionProblems([args], attentionOpts);
    },
    attentionSync: (problems) => {
      runAttentionProblems([...problems], attentionOpts);
    },
    attentionAsync: async (problems) => {
      await attentionProblemsAsync([...problems], attentionOpts);
    },
    mapAsync: (map, x, y) => mapAsync(map, x, y, threads, pool),
    allocFloat32: opts.allocFloat32 ?? ((length) => new Float32Array(length)),
  };
}
