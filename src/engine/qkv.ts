/**
 * `qkvToContext`, the packed-QKV op as a library function: the contract of src/attention run on the CPU
 * attention core (flash style, WebAssembly SIMD, worker threads for large problems).
 */

import { type QkvToContextOptions, qkvToContextWith } from "../attention/qkv-to-context.js";
import { type ParallelOptions, runAttentionProblems } from "../backends/cpu/attention-core.js";
import type { Tensor } from "../ir/tensor.js";

export type { QkvToContextOptions } from "../attention/qkv-to-context.js";

/**
 * Packed-QKV self-attention (TensorRT bertQKVToContext semantics).
 *
 * Fixed length: `qkv` [S, B, 3E, 1, 1] and optional `mask` (valid tokens per sequence) → [S, B, E, 1, 1].
 * Variable length: `qkv` [T, 3E, 1, 1] with `cuSeqlens` [B + 1] → [T, E, 1, 1]. Scale 1/√H. Padded query rows
 * attend to the valid keys as in TensorRT (a length of 0 gives zeros); `computePaddedRows: false` writes zeros.
 * Float32 or float16 in, same dtype out. `parallel` chooses threads for large problems.
 */
export function qkvToContext(
  qkv: Tensor,
  options: QkvToContextOptions & { parallel?: ParallelOptions },
): Tensor {
  return qkvToContextWith(qkv, options, (problems) => runAttentionProblems(problems, options?.parallel));
}
