// A line-by-line port of TensorRT's embLayerNorm mask kernels (NVIDIA/TensorRT a892d222,
// plugin/embLayerNormPlugin/embLayerNormKernel.cu: fillSBSMaskKernel, convertMask; warps from
// embLayerNormPlugin.cpp enqueue; declared sizes from plugin/common/bertCommon.h). Tests build the plugin's
// mask inputs with it, so they check mhafuse against TensorRT's definition rather than against mhafuse's own
// encoder.

/** embLayerNormPlugin.cpp enqueue: the warps per S for which it writes a packed mask. */
function warpsFor(S: number): { warpsM: number; warpsN: number } {
  if (S === 64 || S === 96 || S === 128) return { warpsM: 2, warpsN: 2 };
  if (S === 384) return { warpsM: 1, warpsN: 8 };
  throw new Error(`embLayerNorm writes no packed mask at S = ${S}`);
}

/** bertCommon.h packedMaskSize64/96/128/384: dim 1 of the mask output as embLayerNorm declares it. */
export function declaredPackSize(S: number): number {
  const xmmasM128 = 4;
  const threadsPerCta128 = 2 * 2 * 32;
  const xmmasM384 = 24;
  const threadsPerCta384 = 1 * 8 * 32;
  return S === 384 ? xmmasM384 * threadsPerCta384 : xmmasM128 * threadsPerCta128;
}

/**
 * convertMask + fillSBSMaskKernel. `inputMaskSB` is the model's int32 mask in TensorRT's [S, B] order (1 =
 * token). Returns the mask output [B, declaredPackSize(S)]; the words the kernel never writes hold `fill`
 * (device memory is not cleared), so a decoder that read them would be caught.
 */
export function fillSBSMask(inputMaskSB: Int32Array, S: number, B: number, fill = 0x5a5a5a5a): Int32Array {
  const { warpsM: warps_m, warpsN: warps_n } = warpsFor(S);
  const warps_k = 1;
  const xmmas_m = Math.floor((S + 16 * warps_m - 1) / (16 * warps_m)); // convertMask
  const threads_per_cta = warps_m * warps_n * warps_k * 32;
  const inputMaskX = new Int32Array(B * declaredPackSize(S)).fill(fill);
  // grid(xmmas_m, B), block threads_per_cta
  for (let bi = 0; bi < B; bi++)
    for (let mi = 0; mi < xmmas_m; mi++) {
      const shm_mask = new Int32Array(S);
      for (let si = 0; si < S; si++) shm_mask[si] = inputMaskSB[si * B + bi]!;
      for (let tidx = 0; tidx < threads_per_cta; tidx++) {
        const xmmas_n = Math.floor((S + 16 * warps_n - 1) / (16 * warps_n));
        const warp = Math.floor(tidx / 32);
        const warp_n = Math.floor(warp / warps_m);
        const lane = tidx % 32;
        const col = warp_n * 16 + (lane % 4) * 2;
        let mask = 0;
        const on = (i: number) => (shm_mask[i] === 1 ? 1 : 0);
        for (let ni = 0; ni < xmmas_n; ++ni) {
          const offset = ni * 16 * warps_n + col;
          mask |= on(offset + 0) << (8 * ni + 0);
          mask |= on(offset + 1) << (8 * ni + 1);
          mask |= on(offset + 0) << (8 * ni + 2);
          mask |= on(offset + 1) << (8 * ni + 3);
          mask |= on(offset + 8) << (8 * ni + 4);
          mask |= on(offset + 9) << (8 * ni + 5);
          mask |= on(offset + 8) << (8 * ni + 6);
          mask |= on(offset + 9) << (8 * ni + 7);
        }
        inputMaskX[(bi * xmmas_m + mi) * threads_per_cta + tidx] = mask;
      }
    }
  return inputMaskX;
}

/** The model's [S, B] int32 mask for right-padded sequences of the given lengths. */
export function maskSBFromLengths(lengths: readonly number[], S: number): Int32Array {
  const B = lengths.length;
  const m = new Int32Array(S * B);
  lengths.forEach((len, b) => {
    for (let s = 0; s < len; s++) m[s * B + b] = 1;
  });
  return m;
}
