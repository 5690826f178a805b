/**
 * The CPU backend's primitives for the op contracts (src/ops/compute.ts): the blocked WebAssembly SIMD
 * GEMM and the flash-style attention core, both split over the backend's thread pool when a problem is
 * large enough to repay the hand-off.
 */
import type { OpCompute } from "../../ops/compute.js";
import type { GemmProblem } from "../../ops/gemm-problem.js";
import { runAttentionProblems } from "./attention-parallel.js";
import { gemmBatchAsync, gemmBatchParallel } from "./gemm-parallel.js";

export interface CpuComputeOptions {
  /** Threads a parallel kernel may use, the calling thread included. */
  threads: number;
  /** Where float32 outputs come from (the backend's buffer pool); fresh arrays when absent. */
  allocFloat32?: (length: number) => Float32Array;
}

/** The CPU primitives, plus what only CPU kernels use: the thread count and GEMMs run off this thread. */
export interface CpuCompute extends OpCompute {
  readonly threads: number;
  /** Runs the GEMMs on the pool's workers while the caller awaits (its event loop stays free). */
  gemmAsync(problems: readonly GemmProblem[]): Promise<void>;
}

export function cpuCompute(opts: CpuComputeOptions): CpuCompute {
  const { threads } = opts;
  return {
    threads,
    gemmAsync: (problems) => gemmBatchAsync([...problems], { threads }),
    gemm: (problems) => gemmBatchParallel([...problems], { threads }),
    attention: (args) => {
      runAttentionProblems([args], { threads });
    },
    allocFloat32: opts.allocFloat32 ?? ((length) => new Float32Array(length)),
  };
}
