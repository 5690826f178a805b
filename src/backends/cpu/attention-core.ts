/**
 * The CPU attention core shared by every attention op (QKVToContext, mhafuse.Attention, contrib Attention…):
 * `attentionCore` (synchronous, one thread) and `attentionParallel` (the same, over worker threads).
 * Flash-attention style — online softmax over key blocks, no [B, N, Sq, Skv] tensor, masked keys and padded
 * query rows skipped. Runs on a WebAssembly SIMD kernel (attention-wasm.ts) with the plain-JS kernel as
 * fallback. See attention-kernel.ts for the semantics of every field.
 */
export type {
  AttentionArgs,
  AttentionBias,
  AttentionDims,
  StridedLayout,
} from "../../ops/attention-args.js";
export { type AttentionKernel, attentionCore, attentionFlops } from "./attention-kernel.js";
export {
  attentionParallel,
  attentionProblemsAsync,
  captureAttentionProblems,
  closeAttentionWorkers,
  PARALLEL_MIN_FLOPS,
  type ParallelOptions,
  type ParallelRunStats,
  runAttentionProblems,
} from "./attention-parallel.js";
