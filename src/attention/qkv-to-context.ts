/**
 * Packed-QKV self-attention with TensorRT bertQKVToContext semantics: the contract and the problem building
 * behind the `mhafuse.QKVToContext` graph op and the `qkvToContext` library function. The packed tensor is
 * read in place through strided layouts (per token the 3E axis is [N, 3, H]), one attention problem per
 * sequence; who runs the problems is the caller's `attend` — a backend's attention primitive for the op
 * (`computeOf(ctx).attention`), the CPU attention core for the library function (src/engine/qkv.ts). This
 * module imports no backend.
 */

import { InputError } from "../errors.js";
import { floatToHalf } from "../ir/float16.js";
import { Tensor } from "../ir/tensor.js";
import type { AttentionArgs } from "../ops/attention-args.js";
import { CROSS_ATTENTION_HINT, checkQkvContract, type Fail, type QkvLayout } from "./qkv-contract.js";

export interface QkvRunOptions {
  /**
   * Padded query rows (s >= len). true (default): computed like every other row, a softmax over the valid keys,
   * as TensorRT computes them (and PyTorch eager). false: written as zeros and skipped — less work, for graphs
   * whose consumers never read padded rows.
   */
  computePaddedRows?: boolean;
  /** mhafuse extension: additive bias broadcastable to [B, N, S, S], used by sequences whose length is -1. */
  fallbackBias?: Tensor;
  /** [B · S] key flags (1 = valid) for sequences whose length is -1: a non-contiguous TensorRT packed mask. */
  keyValid?: Uint8Array;
  /** Replaces 1/√H: TensorRT's var-seqlen kernels scale by the padded head size, its int8 kernels by 1/8. */
  scale?: number;
  /**
   * The output buffer (the backend's pool: every row is written, padded and empty rows as zeros). Default: a
   * fresh shared buffer, which costs a zeroed allocation per call (~0.2 ms a BERT-base layer at [1,128]).
   */
  allocFloat32?: (length: number) => Float32Array;
}

/** Runs attention problems (each writes its `out`); the caller's choice of kernel, threads and pool. */
export type Attend = (problems: AttentionArgs[]) => void;

/** Float32 view of a float tensor; float16 is widened into shared memory so worker threads read it in place. */
function float32Of(t: Tensor): Float32Array {
  if (t.type === "float32") return t.data as Float32Array;
  const out = new Float32Array(new SharedArrayBuffer(t.size * 4));
  for (let i = 0; i < out.length; i++) out[i] = t.getNumber(i);
  return out;
}

/** Strides of a bias broadcast to [B, N, S, S]; a key axis of size 1 is expanded (the core reads keys at stride 1). */
function biasFor(bias: Tensor, layout: QkvLayout, fail: Fail): NonNullable<AttentionArgs["bias"]> {
  const { batch: B, numHeads: N, seqLen: S } = layout;
  if (bias.type !== "float32" && bias.type !== "float16")
    fail(`fallback_bias must be float32 or float16, got ${bias.type}`);
  if (bias.dims.length > 4)
    fail(
      `fallback_bias must broadcast to [B, N, S, S] = [${B}, ${N}, ${S}, ${S}], got rank ${bias.dims.length}`,
    );
  const dims = [...Array(4 - bias.dims.length).fill(1), ...bias.dims] as number[];
  const target = [B, N, S, S];
  dims.forEach((d, i) => {
    if (d !== 1 && d !== target[i])
      fail(`fallback_bias of shape [${bias.dims}] does not broadcast to [B, N, S, S] = [${target}]`);
  });
  let data = float32Of(bias);
  if (dims[3] === 1 && S > 1) {
    const rows = data.length;
    const wide = new Float32Array(rows * S);
    for (let r = 0; r < rows; r++) wide.fill(data[r]!, r * S, r * S + S);
    data = wide;
    dims[3] = S;
  }
  const rowStride = dims[2] === 1 ? 0 : dims[3]!;
  const headStride = dims[1] === 1 ? 0 : dims[2]! * dims[3]!;
  const batchStride = dims[0] === 1 ? 0 : dims[1]! * dims[2]! * dims[3]!;
  return { data, offset: 0, batchStride, headStride, rowStride };
}

/** An additive bias of 0 (valid key) or -∞ (masked key) per sequence, read at offset b · S. */
function keyMaskBias(keyValid: Uint8Array): NonNullable<AttentionArgs["bias"]> {
  const data = new Float32Array(keyValid.length);
  keyValid.forEach((v, i) => {
    data[i] = v ? 0 : Number.NEGATIVE_INFINITY;
  });
  return { data, offset: 0, batchStride: 0, headStride: 0, rowStride: 0 };
}

/** Zeros the output rows of invalid tokens (key-masked sequences when padded rows are not computed). */
function zeroInvalidRows(out: Float32Array, layout: QkvLayout, keyValid: Uint8Array): void {
  const { batch: B, seqLen: S, hiddenSize: E } = layout;
  for (let b = 0; b < B; b++)
    if (layout.lengths?.[b] === -1)
      for (let s = 0; s < S; s++) {
        const row = layout.batchFirst ? b * S + s : s * B + b;
        if (!keyValid[b * S + s]) out.fill(0, row * E, (row + 1) * E);
      }
}

/** Runs a validated problem; the output has the dtype of qkv and shape [S, B, E, 1, 1] or [T, E, 1, 1]. */
export function runQkvAttention(
  qkv: Tensor,
  layout: QkvLayout,
  opts: QkvRunOptions,
  fail: Fail,
  attend: Attend,
): Tensor {
  const { numHeads: N, headSize: H, hiddenSize: E, batch: B, seqLen: S } = layout;
  const computePaddedRows = opts.computePaddedRows ?? true;
  const data = float32Of(qkv);
  // Shared memory: worker threads write their rows directly, no copy back.
  const out = opts.allocFloat32
    ? opts.allocFloat32(layout.tokens * E)
    : new Float32Array(new SharedArrayBuffer(layout.tokens * E * 4));
  const problems: AttentionArgs[] = [];
  const base = {
    batch: 1,
    numHeads: N,
    kvNumHeads: N,
    headSize: H,
    vHeadSize: H,
    scale: opts.scale ?? 1 / Math.sqrt(H),
    q: data,
    k: data,
    v: data,
    out,
  };
  if (layout.mode === "varseqlen") {
    const cu = layout.cuSeqlens!;
    for (let b = 0; b < B; b++) {
      const len = cu[b + 1]! - cu[b]!;
      if (len === 0) continue;
      const inRow = (t: number) => ({
        offset: cu[b]! * 3 * E + t * H,
        batchStride: 0,
        headStride: 3 * H,
        seqStride: 3 * E,
      });
      problems.push({
        ...base,
        seqQ: len,
        seqKV: len,
        qLayout: inRow(0),
        kLayout: inRow(1),
        vLayout: inRow(2),
        outLayout: { offset: cu[b]! * E, batchStride: 0, headStride: H, seqStride: E },
      });
    }
  } else {
    const keyBias = opts.keyValid ? keyMaskBias(opts.keyValid) : undefined;
    const bias = keyBias ?? (opts.fallbackBias ? biasFor(opts.fallbackBias, layout, fail) : undefined);
    const biasStride = keyBias ? S : (bias?.batchStride ?? 0);
    // Token (s, b) is row s·B + b of [S, B, …], row b·S + s batch-first.
    const [tokenStride, seqBase] = layout.batchFirst ? [1, S] : [B, 1];
    for (let b = 0; b < B; b++) {
      const len = layout.lengths ? layout.lengths[b]! : S;
      const inRow = (t: number) => ({
        offset: b * seqBase * 3 * E + t * H,
        batchStride: 0,
        headStride: 3 * H,
        seqStride: tokenStride * 3 * E,
      });
      const useBias = len === -1;
      problems.push({
        ...base,
        seqQ: S,
        seqKV: S,
        qLayout: inRow(0),
        kLayout: inRow(1),
        vLayout: inRow(2),
        outLayout: { offset: b * seqBase * E, batchStride: 0, headStride: H, seqStride: tokenStride * E },
        keyLengths: useBias ? undefined : [len],
        queryLengths: useBias || computePaddedRows ? undefined : [len],
        bias: useBias && bias ? { ...bias, offset: b * biasStride } : undefined,
      });
    }
  }
  attend(problems);
  if (opts.keyValid && !computePaddedRows) zeroInvalidRows(out, layout, opts.keyValid);
  const dims =
    layout.mode === "varseqlen"
      ? [layout.tokens, E, 1, 1]
      : layout.batchFirst
        ? [B, S, E, 1, 1]
        : [S, B, E, 1, 1];
  if (layout.dtype === "float16") {
    const half = new Uint16Array(out.length);
    for (let i = 0; i < out.length; i++) half[i] = floatToHalf(out[i]!);
    return new Tensor("float16", half, dims);
  }
  return new Tensor("float32", out, dims);
}

export interface QkvToContextOptions extends QkvRunOptions {
  numHeads: number;
  /** Checked against the E that qkv carries, when given. */
  hiddenSize?: number;
  /** Fixed length: int32 [B] (or [B, 1]) valid tokens per sequence. */
  mask?: Tensor | ArrayLike<number>;
  /** Variable length: int32 [B + 1]; qkv is then [T, 3E, 1, 1]. */
  cuSeqlens?: Tensor | ArrayLike<number>;
  maxSeqlen?: number;
}

function isTensorLike(x: unknown): x is Tensor {
  return typeof x === "object" && x !== null && "dims" in x && "data" in x && "type" in x;
}

function numbersOf(x: Tensor | ArrayLike<number>, what: string, fail: Fail): number[] {
  if (!isTensorLike(x)) return Array.from(x, Number);
  if (x.type !== "int32" && x.type !== "int64") fail(`${what} must be int32, got ${x.type}`);
  return Array.from(x.data as ArrayLike<number | bigint>, Number);
}

/** The teaching error for Q, K, V handed over separately instead of packed. */
function separateTensorsError(parts: unknown[], fail: Fail): never {
  const seqs = parts.filter(isTensorLike).map((t) => t.dims[0]);
  if (new Set(seqs).size > 1)
    fail(
      `qkvToContext got separate Q/K/V tensors with sequence lengths ${seqs.join(", ")}: ${CROSS_ATTENTION_HINT}`,
    );
  return fail(
    "qkvToContext takes one packed tensor [S, B, 3E, 1, 1] (per token [N, 3, H]), not separate Q, K, V: " +
      "project with the weights from packQkvWeights, or use the general fused op `mhafuse.Attention`",
  );
}

/**
 * Packed-QKV self-attention (TensorRT bertQKVToContext semantics).
 *
 * Fixed length: `qkv` [S, B, 3E, 1, 1] and optional `mask` (valid tokens per sequence) → [S, B, E, 1, 1].
 * Variable length: `qkv` [T, 3E, 1, 1] with `cuSeqlens` [B + 1] → [T, E, 1, 1]. Scale 1/√H. Rows of padded
 * queries attend to the valid keys as in TensorRT (a length of 0 gives zeros); `computePaddedRows: false`
 * writes them as zeros instead. Float32 or float16 in, same dtype out.
 */
export function qkvToContextWith(qkv: Tensor, options: QkvToContextOptions, attend: Attend): Tensor {
  const fail: Fail = (message) => {
    throw new InputError(`qkvToContext: ${message}`);
  };
  const given: unknown = qkv;
  if (Array.isArray(given)) separateTensorsError(given, fail);
  if (!isTensorLike(given)) {
    const o = given as Record<string, unknown> | null;
    if (o && typeof o === "object" && "q" in o && "k" in o && "v" in o)
      separateTensorsError([o.q, o.k, o.v], fail);
    fail("qkv must be a Tensor");
  }
  if (!options || typeof options.numHeads !== "number")
    fail("options.numHeads (the number of heads) is required");
  const cuSeqlens =
    options.cuSeqlens !== undefined ? numbersOf(options.cuSeqlens, "cuSeqlens", fail) : undefined;
  const lengths = options.mask !== undefined ? numbersOf(options.mask, "mask", fail) : undefined;
  if (options.mask !== undefined && isTensorLike(options.mask)) {
    const d = options.mask.dims;
    if (!(d.length === 1 || (d.length === 2 && d[1] === 1)))
      fail(`mask must be int32 [B] (valid tokens per sequence), got shape [${d}]`);
  }
  if (cuSeqlens && lengths) fail("give either mask (fixed length) or cuSeqlens (variable length), not both");
  const layout = checkQkvContract(
    {
      qkv,
      numHeads: options.numHeads,
      hiddenSize: options.hiddenSize,
      lengths,
      hasFallbackBias: options.fallbackBias !== undefined,
      cuSeqlens,
      maxSeqlen: options.maxSeqlen,
      varSeqlen: cuSeqlens !== undefined ? true : qkv.dims.length === 4 ? true : undefined,
    },
    fail,
  );
  return runQkvAttention(qkv, layout, options, fail, attend);
}
