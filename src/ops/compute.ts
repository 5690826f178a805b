/**
 * The heavy primitives an op's reference delegates to. An op's contract (validation, layouts, broadcasting)
 * turns a node into GEMM problems or attention problems once; who runs them is the caller's choice: the
 * reference evaluator runs the plain loops below (the oracle), a backend hands in its fast kernels (the CPU
 * backend: blocked WebAssembly SIMD GEMM and the flash-style attention core over its thread pool). So the
 * contract is written once and a backend cannot drift from it.
 */
import { type AttentionArgs, referenceAttention } from "./attention-args.js";
import { type GemmProblem, referenceGemm } from "./gemm-problem.js";

export interface OpCompute {
  /** Runs independent GEMMs whose C blocks do not overlap. */
  gemm(problems: readonly GemmProblem[]): void;
  /** Runs one attention problem, writing `args.out`. */
  attention(args: AttentionArgs): void;
  /**
   * A float32 array for an output the op will write in full (never read before written): a backend may
   * hand out a pooled buffer with stale contents. The reference allocates a fresh array.
   */
  allocFloat32(length: number): Float32Array;
}

export const referenceCompute: OpCompute = {
  gemm(problems) {
    for (const p of problems) referenceGemm(p);
  },
  attention: referenceAttention,
  allocFloat32: (length) => new Float32Array(length),
};

const withAllocator = new WeakMap<OpCompute, OpCompute>();

/**
 * The reference primitives with `backend`'s output allocator: what an op runs on when the backend has no
 * kernel for it (its arithmetic stays the oracle's; its outputs land in the backend's buffers).
 */
export function referenceWith(backend: OpCompute): OpCompute {
  let c = withAllocator.get(backend);
  if (!c) {
    c = { ...referenceCompute, allocFloat32: backend.allocFloat32 };
    withAllocator.set(backend, c);
  }
  return c;
}

/** The primitives in force for a run: the backend's when it handed some, else the reference's. */
export function computeOf(ctx: { compute?: OpCompute }): OpCompute {
  return ctx.compute ?? referenceCompute;
}
