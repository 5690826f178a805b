/**
 * The CPU backend's primitives for the op contracts (src/ops/compute.ts): the blocked WebAssembly SIMD
 * GEMM and the flash-style attention core, both split over the backend's thread pool when a problem is
 * large enough to repay the hand-off.
 */
import type { OpCompute } from "../../ops/compute.js";
import { runAttentionProblems } from "./attention-parallel.js";
import { gemmBatchParallel } from "./gemm-parallel.js";

export interface CpuComputeOptions {
  /** Threads a parallel kernel may use, the calling thread included. */
  threads: number;
  /** Where float32 outputs come from (the backend's buffer pool); fresh arrays when absent. */
  allocFloat32?: (length: number) => Float32Array;
}

export function cpuCompute(opts: CpuComputeOptions): OpCompute {
  const { threads } = opts;
  return {
    gemm: (problems) => gemmBatchParallel([...problems], { threads }),
    attention: (args) => {
      runAttentionProblems([args], { threads });
    },
    allocFloat32: opts.allocFloat32 ?? ((length) => new Float32Array(length)),
  };
}
