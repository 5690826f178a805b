/**
 * The mask input of TensorRT's CustomQKVToContextPluginDynamic, decoded as TensorRT lays it out
 * (NVIDIA/TensorRT a892d222; every rule below cites the file it comes from).
 *
 * - Lengths (`maskIdx`): int32 [B, 1] from embLayerNorm's maskIdxKernel (v1/v4, the unfused path), or int32 [B]
 *   (v2/v5 with var_seqlen = 0): the number of valid tokens of each sequence, counted from the start.
 * - The packed "full mask" of the fused fp16/int8 kernels (v1/v4): embLayerNorm declares it int32 [B, 512] for
 *   S = 64, 96, 128 and [B, 6144] for S = 384 (`plugin/common/bertCommon.h`: packedMaskSize64/96/128/384), but
 *   `fillSBSMaskKernel` (`plugin/embLayerNormPlugin/embLayerNormKernel.cu`) writes sequence b at word
 *   `b · xmmas_m · threads_per_cta` and the fused runner reads it with that same stride
 *   (`mhaRunner.cu`, `packed_mask_stride_in_bytes = xmmas_m · threads_per_cta · 4`): 256 words at S = 64,
 *   384 at S = 96, 512 at S = 128, 6144 at S = 384. The words past B · stride are never written nor read.
 *   Each word holds, in MMA-fragment order, which key columns are valid; the same key mask serves every query
 *   row, so any set of valid keys (not only a prefix) is honoured, as the fused kernel honours it.
 *   No other S has a packed layout: embLayerNorm writes [B, 1] lengths there.
 */
import type { Fail } from "./qkv-contract.js";

/** The fused kernels' CTA shape by sequence length (`embLayerNormPlugin.cpp` enqueue, `mhaRunner.cu` setup). */
const WARPS: ReadonlyMap<number, { warpsM: number; warpsN: number }> = new Map([
  [64, { warpsM: 2, warpsN: 2 }],
  [96, { warpsM: 2, warpsN: 2 }],
  [128, { warpsM: 2, warpsN: 2 }],
  [384, { warpsM: 1, warpsN: 8 }],
]);

/** bertCommon.h: the packed mask's declared size per sequence (dim 1 of embLayerNorm's mask output). */
const DECLARED_WORDS: ReadonlyMap<number, number> = new Map([
  [64, 4 * 128],
  [96, 4 * 128],
  [128, 4 * 128],
  [384, 24 * 256],
]);

export interface PackedMaskLayout {
  S: number;
  warpsM: number;
  warpsN: number;
  threadsPerCta: number;
  /** One uint32 per thread per 16·warpsM query rows. */
  xmmasM: number;
  xmmasN: number;
  /** Words between two sequences: where fillSBSMaskKernel writes and the fused kernel reads. */
  strideWords: number;
  /** dim 1 of the tensor as TensorRT declares it. */
  declaredWords: number;
}

/** The packed layout at sequence length S, or undefined where TensorRT has none. */
export function packedMaskLayout(S: number): PackedMaskLayout | undefined {
  const w = WARPS.get(S);
  if (!w) return undefined;
  const threadsPerCta = w.warpsM * w.warpsN * 32;
  const xmmasM = Math.ceil(S / (16 * w.warpsM));
  return {
    S,
    ...w,
    threadsPerCta,
    xmmasM,
    xmmasN: Math.ceil(S / (16 * w.warpsN)),
    strideWords: xmmasM * threadsPerCta,
    declaredWords: DECLARED_WORDS.get(S)!,
  };
}

/** The key columns thread `tidx` covers, in bit order: bit 8·ni + k is column `columns[ni][k]`. */
function threadColumns(layout: PackedMaskLayout, tidx: number): number[][] {
  const warpN = Math.floor(Math.floor(tidx / 32) / layout.warpsM);
  const col = warpN * 16 + ((tidx % 32) % 4) * 2;
  return Array.from({ length: layout.xmmasN }, (_, ni) => {
    const o = ni * 16 * layout.warpsN + col;
    // fillSBSMaskKernel: bits 0..7 are columns o, o+1, o, o+1, o+8, o+9, o+8, o+9.
    return [o, o + 1, o, o + 1, o + 8, o + 9, o + 8, o + 9];
  });
}

/** The word fillSBSMaskKernel writes for thread `tidx` (any row block) given one sequence's valid keys. */
function maskWord(layout: PackedMaskLayout, tidx: number, valid: ArrayLike<boolean>): number {
  let word = 0;
  threadColumns(layout, tidx).forEach((cols, ni) => {
    cols.forEach((c, k) => {
      if (valid[c]) word |= 1 << (8 * ni + k);
    });
  });
  return word >>> 0;
}

/**
 * The packed mask for the given per-sequence valid keys (a length, or a 0/1 flag per key), as embLayerNorm
 * outputs it: int32 [B, declaredWords], sequence b at word b · strideWords, the unused tail zero.
 */
export function encodePackedMask(
  perSequence: readonly (number | ArrayLike<boolean>)[],
  S: number,
): Int32Array {
  const layout = packedMaskLayout(S);
  if (!layout) throw new RangeError(`TensorRT has no packed mask layout at S = ${S}`);
  const out = new Int32Array(perSequence.length * layout.declaredWords);
  perSequence.forEach((seq, b) => {
    const valid =
      typeof seq === "number" ? Array.from({ length: S }, (_, c) => c < seq) : Array.from(seq, Boolean);
    for (let tidx = 0; tidx < layout.threadsPerCta; tidx++) {
      const word = maskWord(layout, tidx, valid);
      for (let mi = 0; mi < layout.xmmasM; mi++)
        out[b * layout.strideWords + mi * layout.threadsPerCta + tidx] = word;
    }
  });
  return out;
}

/** What a plugin mask says per sequence: a valid length, or (non-contiguous packed masks) a key mask. */
export interface PluginMask {
  /** Valid tokens per sequence; -1 where `keyValid` holds the sequence's valid keys instead. */
  lengths: number[];
  /** [B · S] flags (1 = valid key), set only when some sequence's valid keys are not a prefix. */
  keyValid?: Uint8Array;
}

function lengthsOf(values: ArrayLike<number>, B: number): PluginMask {
  return { lengths: Array.from({ length: B }, (_, b) => values[b]!) };
}

/** Decodes and checks one sequence's words: every word must be what fillSBSMaskKernel writes. */
function decodeSequence(
  words: ArrayLike<number>,
  base: number,
  layout: PackedMaskLayout,
  b: number,
  fail: Fail,
): boolean[] {
  const valid = new Array<boolean>(layout.S).fill(false);
  for (let tidx = 0; tidx < layout.threadsPerCta; tidx++) {
    const word = words[base + tidx]! >>> 0;
    threadColumns(layout, tidx).forEach((cols, ni) => {
      cols.forEach((c, k) => {
        if ((word >>> (8 * ni + k)) & 1) valid[c] = true;
      });
    });
  }
  for (let mi = 0; mi < layout.xmmasM; mi++)
    for (let tidx = 0; tidx < layout.threadsPerCta; tidx++) {
      const at = base + mi * layout.threadsPerCta + tidx;
      if (words[at]! >>> 0 !== maskWord(layout, tidx, valid))
        fail(
          `packed mask word ${at - base} of sequence ${b} is 0x${(words[at]! >>> 0).toString(16)}, which ` +
            `embLayerNorm's fillSBSMaskKernel never writes (each word repeats its columns' bits and every ` +
            `row block holds the same words); build the mask with embLayerNorm or pass int32 [B, 1] lengths`,
        );
    }
  return valid;
}

/** Where TensorRT has a packed layout, what the mask may be; used in error messages. */
function expectedShapes(B: number, S: number): string {
  const layout = packedMaskLayout(S);
  return layout
    ? `int32 [${B}, 1] (maskIdx lengths) or [${B}, ${layout.declaredWords}] (embLayerNorm's packed mask at S = ${S})`
    : `int32 [${B}, 1] (maskIdx lengths): TensorRT packs masks only for S = 64, 96, 128 and 384, not S = ${S}`;
}

/**
 * One entry per sequence from the plugin's mask input: lengths for [B] / [B, 1], decoded key validity for
 * the packed [B, declaredWords] mask (lengths where the valid keys form a prefix).
 */
export function decodePluginMask(
  values: ArrayLike<number>,
  dims: readonly number[],
  B: number,
  S: number,
  fail: Fail,
): PluginMask {
  if (dims.length === 1 || (dims.length === 2 && dims[1] === 1)) {
    if (dims[0] !== B)
      fail(`mask must hold one length per sequence: int32 [B] or [B, 1] with B = ${B}, got shape [${dims}]`);
    return lengthsOf(values, B);
  }
  if (dims.length !== 2) fail(`mask must be ${expectedShapes(B, S)}, got shape [${dims}]`);
  if (dims[0] !== B) fail(`mask has ${dims[0]} rows but the batch has B = ${B} sequences`);
  const layout = packedMaskLayout(S);
  if (!layout || dims[1] !== layout.declaredWords)
    fail(`mask [${dims}] is no layout TensorRT writes; expected ${expectedShapes(B, S)}`);
  const lengths: number[] = [];
  let keyValid: Uint8Array | undefined;
  for (let b = 0; b < B; b++) {
    const valid = decodeSequence(values, b * layout!.strideWords, layout!, b, fail);
    const prefix = valid.indexOf(false) === -1 ? S : valid.indexOf(false);
    if (!valid.slice(prefix).some(Boolean)) {
      lengths.push(prefix);
      continue;
    }
    keyValid ??= new Uint8Array(B * S);
    valid.forEach((v, c) => {
      keyValid![b * S + c] = v ? 1 : 0;
    });
    lengths.push(-1);
  }
  return { lengths, keyValid };
}
