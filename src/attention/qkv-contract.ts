/**
 * The input contract of the packed-QKV attention op (TensorRT bertQKVToContext semantics), checked in one
 * place for the library function and the graph op. Every breach is reported through `fail` with a message
 * that says what was expected, so the op can raise OpError and the library InputError.
 */
import type { DType } from "../ir/dtype.js";
import type { Tensor } from "../ir/tensor.js";

export type Fail = (message: string) => never;

/** Where to go when Q and K/V cannot share one packed tensor. */
export const CROSS_ATTENTION_HINT =
  "the packed QKV op needs Q, K and V of one sequence length (self-attention). For cross-attention, or Q/K/V " +
  "coming from different sequences, use the general fused op `mhafuse.Attention` (separate Q, K, V inputs), " +
  "or let `mhafuse optimize MODEL.onnx` fuse the original model's attention for you";

/** A validated problem: shapes resolved, lengths checked. */
export interface QkvLayout {
  mode: "fixed" | "varseqlen";
  dtype: "float32" | "float16";
  numHeads: number;
  hiddenSize: number;
  headSize: number;
  /** Fixed: S, B. Var-seqlen: S = max sequence length, B = number of sequences. */
  seqLen: number;
  batch: number;
  /** Var-seqlen: total tokens T. Fixed: S·B. */
  tokens: number;
  /** Fixed: valid length per sequence (-1 = use the fallback bias over all S keys). */
  lengths?: number[];
  /** Var-seqlen: cu_seqlens, B + 1 entries. */
  cuSeqlens?: number[];
  /** Fixed: qkv is [B, S, 3E, 1, 1] and the output [B, S, E, 1, 1] (mhafuse's batch_first = 1). */
  batchFirst?: boolean;
}

export interface QkvContractInput {
  qkv: Tensor;
  numHeads: number;
  hiddenSize?: number;
  /** Fixed length: valid tokens per sequence (already decoded from the plugin's mask format). */
  lengths?: readonly number[];
  /** True when a fallback bias is present, which makes -1 a legal length. */
  hasFallbackBias?: boolean;
  cuSeqlens?: readonly number[];
  maxSeqlen?: number;
  /** Which form the caller asked for; undefined = decided by the rank of qkv. */
  varSeqlen?: boolean;
  /** Fixed length: qkv is [B, S, 3E, 1, 1] (batch-major, as the model's activations are) instead of [S, B, …]. */
  batchFirst?: boolean;
}

const fmt = (dims: readonly number[]) => `[${dims.join(", ")}]`;

function checkDtype(t: DType, fail: Fail): "float32" | "float16" {
  if (t === "float32" || t === "float16") return t;
  return fail(
    `qkv must be float32 or float16, got ${t} (cast it first; TensorRT's int8 form is the interleaved plugin, ` +
      `CustomQKVToContextPluginDynamic plugin_version 3 or 6)`,
  );
}

function checkHeads(threeE: number, numHeads: number, hiddenSize: number | undefined, fail: Fail) {
  if (!Number.isInteger(numHeads) || numHeads < 1)
    fail(`num_heads must be a positive integer, got ${numHeads}`);
  if (threeE % 3 !== 0)
    fail(
      `the packed axis of qkv has ${threeE} values per token, not a multiple of 3 (it must be 3·E: per head ` +
        `[q, k, v] of H values each). If Q and K/V have different sizes or lengths, ${CROSS_ATTENTION_HINT}`,
    );
  const E = threeE / 3;
  if (hiddenSize !== undefined && hiddenSize !== E)
    fail(
      `hidden_size=${hiddenSize} but qkv carries 3·E = ${threeE} values per token, so E = ${E}; hidden_size must ` +
        `equal E = num_heads·head_size`,
    );
  if (E % numHeads !== 0)
    fail(`hidden size E = ${E} is not divisible by num_heads = ${numHeads}: E must be num_heads·head_size`);
  return { E, H: E / numHeads };
}

function checkTrailingOnes(dims: readonly number[], fail: Fail): void {
  const n = dims.length;
  if (dims[n - 1] !== 1 || dims[n - 2] !== 1)
    fail(
      `the last two dims of qkv must be 1, 1 (TensorRT's FC layout), got ${fmt(dims)}; ` +
        `reshape it, e.g. x.reshape([${dims.slice(0, n - 2).join(", ")}${n > 2 ? ", " : ""}1, 1])`,
    );
}

export function checkQkvContract(input: QkvContractInput, fail: Fail): QkvLayout {
  const { qkv } = input;
  const dtype = checkDtype(qkv.type, fail);
  const dims = qkv.dims;
  const varSeqlen = input.varSeqlen ?? dims.length === 4;
  if (varSeqlen) {
    if (dims.length !== 4)
      fail(
        `with var_seqlen, qkv must be [T, 3E, 1, 1] (all sequences' tokens stacked), got rank ${dims.length} ${fmt(dims)}`,
      );
    checkTrailingOnes(dims, fail);
    const [T, threeE] = dims as [number, number];
    const { E, H } = checkHeads(threeE, input.numHeads, input.hiddenSize, fail);
    const cu = input.cuSeqlens;
    if (!cu)
      return fail("var_seqlen needs cu_seqlens: int32 [B + 1] with sequence b at rows cu[b]..cu[b+1]-1");
    if (cu.length < 2) fail(`cu_seqlens must have B + 1 >= 2 entries, got ${cu.length}`);
    if (cu[0] !== 0) fail(`cu_seqlens must start at 0, got cu_seqlens[0] = ${cu[0]}`);
    let longest = 0;
    for (let b = 1; b < cu.length; b++) {
      if (!Number.isInteger(cu[b]) || cu[b]! < cu[b - 1]!)
        fail(
          `cu_seqlens must be non-decreasing, but cu_seqlens[${b}] = ${cu[b]} < cu_seqlens[${b - 1}] = ${cu[b - 1]}`,
        );
      longest = Math.max(longest, cu[b]! - cu[b - 1]!);
    }
    if (cu[cu.length - 1] !== T)
      fail(
        `cu_seqlens must end at T = ${T} (the rows of qkv), got cu_seqlens[${cu.length - 1}] = ${cu[cu.length - 1]}`,
      );
    const maxSeqlen = input.maxSeqlen ?? longest;
    if (longest > maxSeqlen)
      fail(
        `a sequence has ${longest} tokens but max_seqlen is ${maxSeqlen}; max_seqlen must be >= every length`,
      );
    return {
      mode: "varseqlen",
      dtype,
      numHeads: input.numHeads,
      hiddenSize: E,
      headSize: H,
      seqLen: maxSeqlen,
      batch: cu.length - 1,
      tokens: T,
      cuSeqlens: [...cu],
    };
  }
  const fixedForm = input.batchFirst ? "[B, S, 3E, 1, 1]" : "[S, B, 3E, 1, 1]";
  if (dims.length !== 5)
    fail(
      `qkv must be ${fixedForm} (fixed length) or [T, 3E, 1, 1] with cu_seqlens (variable length), ` +
        `got rank ${dims.length} ${fmt(dims)}`,
    );
  checkTrailingOnes(dims, fail);
  const [d0, d1, threeE] = dims as [number, number, number];
  const [S, B] = input.batchFirst ? [d1, d0] : [d0, d1];
  const { E, H } = checkHeads(threeE, input.numHeads, input.hiddenSize, fail);
  let lengths: number[] | undefined;
  if (input.lengths) {
    if (input.lengths.length !== B)
      fail(`mask must hold one length per sequence: int32 [B] = [${B}], got ${input.lengths.length} values`);
    lengths = [...input.lengths];
    lengths.forEach((len, b) => {
      if (len === -1 && input.hasFallbackBias) return;
      if (!Number.isInteger(len) || len < 0 || len > S)
        fail(
          `mask[${b}] = ${len} is outside [0, S = ${S}]: the mask holds the number of valid tokens of each ` +
            `sequence${input.hasFallbackBias ? " (or -1 to use fallback_bias)" : ""}`,
        );
    });
  }
  return {
    mode: "fixed",
    dtype,
    numHeads: input.numHeads,
    hiddenSize: E,
    headSize: H,
    seqLen: S,
    batch: B,
    tokens: S * B,
    lengths,
    ...(input.batchFirst && { batchFirst: true }),
  };
}
