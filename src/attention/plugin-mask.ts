/**
 * Decoding the mask input of TensorRT's CustomQKVToContextPluginDynamic into one valid length per sequence.
 *
 * - v2 (and the unfused v1 path): int32 [B], the number of valid tokens (embLayerNorm's `maskIdx`).
 * - v1 with embLayerNorm's packed `maskIdx` [B, packSize]: packSize 1 is the same length; a larger packSize is
 *   the "full mask" that the fused fp16/int8 kernels read — per batch, xmmas_m·threads_per_cta uint32 words
 *   whose bits mark valid key columns in the MMA fragment order of embLayerNorm's fillSBSMaskKernel. We read the
 *   first row block of words back into per-column validity and count the valid prefix.
 */
import type { Fail } from "./qkv-contract.js";

/** The warp layout of the fused kernels by sequence length (from TensorRT's fused MHA runner). */
function warpLayout(S: number): { warpsM: number; warpsN: number } | undefined {
  if (S === 64 || S === 96 || S === 128) return { warpsM: 2, warpsN: 2 };
  if (S === 256) return { warpsM: 1, warpsN: 4 };
  if (S === 384) return { warpsM: 1, warpsN: 8 };
  return undefined;
}

/** Words per sequence of the full (packed) mask at sequence length S, or undefined when S has no fused kernel. */
export function packedMaskWords(S: number): number | undefined {
  const w = warpLayout(S);
  if (!w) return undefined;
  const xmmasM = Math.ceil(S / (16 * w.warpsM));
  return xmmasM * w.warpsM * w.warpsN * 32;
}

/** Key-column validity encoded in the first row block of one sequence's packed mask words. */
function columnsOfPackedMask(words: ArrayLike<number>, S: number): boolean[] {
  const { warpsM, warpsN } = warpLayout(S)!;
  const threads = warpsM * warpsN * 32;
  const xmmasN = Math.ceil(S / (16 * warpsN));
  const valid = new Array<boolean>(S).fill(false);
  for (let tidx = 0; tidx < threads; tidx++) {
    const word = words[tidx]! >>> 0;
    const warpN = Math.floor(Math.floor(tidx / 32) / warpsM);
    const col = warpN * 16 + ((tidx % 32) % 4) * 2;
    for (let ni = 0; ni < xmmasN; ni++) {
      const offset = ni * 16 * warpsN + col;
      // Bits 8ni+0/1 are columns offset, offset+1; bits 8ni+4/5 are offset+8, offset+9 (2,3,6,7 repeat them).
      const cols: [number, number][] = [
        [0, offset],
        [1, offset + 1],
        [4, offset + 8],
        [5, offset + 9],
      ];
      for (const [bit, c] of cols) if (c < S && (word >>> (8 * ni + bit)) & 1) valid[c] = true;
    }
  }
  return valid;
}

/** Encodes valid lengths as the fused full mask (the inverse, for tests and for building TensorRT-style graphs). */
export function encodePackedMask(lengths: readonly number[], S: number): Int32Array {
  const words = packedMaskWords(S);
  if (words === undefined) throw new RangeError(`no fused mask layout for S = ${S}`);
  const { warpsM, warpsN } = warpLayout(S)!;
  const threads = warpsM * warpsN * 32;
  const xmmasM = words / threads;
  const xmmasN = Math.ceil(S / (16 * warpsN));
  const out = new Int32Array(lengths.length * words);
  lengths.forEach((len, b) => {
    const on = (c: number) => (c < len ? 1 : 0);
    for (let mi = 0; mi < xmmasM; mi++)
      for (let tidx = 0; tidx < threads; tidx++) {
        const warpN = Math.floor(Math.floor(tidx / 32) / warpsM);
        const col = warpN * 16 + ((tidx % 32) % 4) * 2;
        let mask = 0;
        for (let ni = 0; ni < xmmasN; ni++) {
          const o = ni * 16 * warpsN + col;
          const bits = [on(o), on(o + 1), on(o), on(o + 1), on(o + 8), on(o + 9), on(o + 8), on(o + 9)];
          bits.forEach((v, k) => {
            mask |= v << (8 * ni + k);
          });
        }
        out[(b * xmmasM + mi) * threads + tidx] = mask;
      }
  });
  return out;
}

/** One valid length per sequence from the plugin's mask input, whatever its form. */
export function decodePluginMask(
  values: ArrayLike<number>,
  dims: readonly number[],
  B: number,
  S: number,
  fail: Fail,
): number[] {
  if (dims.length === 1 || (dims.length === 2 && dims[1] === 1)) {
    if (dims[0] !== B)
      fail(`mask must hold one length per sequence: int32 [B] = [${B}], got shape [${dims}]`);
    return Array.from({ length: B }, (_, b) => values[b]!);
  }
  if (dims.length !== 2)
    fail(`mask must be int32 [B] (valid lengths) or v1's maskIdx [B, packSize], got shape [${dims}]`);
  if (dims[0] !== B) fail(`mask has ${dims[0]} rows but the batch has B = ${B} sequences`);
  const words = packedMaskWords(S);
  const pack = dims[1]!;
  if (words === undefined || (pack !== words && pack !== 2 * words))
    fail(
      `mask [${dims}] looks like embLayerNorm's packed maskIdx, but packSize ${pack} matches no fused layout at ` +
        `S = ${S}${words ? ` (expected ${words})` : " (fused masks exist for S = 64, 96, 128, 256, 384)"}; ` +
        `pass int32 [B] valid lengths instead`,
    );
  return Array.from({ length: B }, (_, b) => {
    const valid = columnsOfPackedMask(Array.prototype.slice.call(values, b * pack, b * pack + pack), S);
    const len = valid.indexOf(false) === -1 ? S : valid.indexOf(false);
    if (valid.slice(len).some(Boolean))
      fail(`packed mask of sequence ${b} is not contiguous: valid tokens must form a prefix (right padding)`);
    return len;
  });
}
