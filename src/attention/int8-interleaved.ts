/**
 * TensorRT's int8 interleaved var-seqlen attention (CustomQKVToContextPluginDynamic v3 / v6,
 * `plugin/bertQKVToContextPlugin/qkvToContextInt8InterleavedPlugin*.cpp`), by its reference semantics:
 * dequantise with the given scales, compute in float, requantise.
 *
 * qkv is int8 [1, 3E, T, 1]: channel-major ("interleaved"), so token t's packed vector [N, 3, H] is the column
 * qkv[0, :, t, 0]. TensorRT stores it in its CHW32 format; as an ONNX tensor it is the plain NCHW array.
 * The output is int8 [1, E, T, 1] the same way. The scores are scaled by input_qkv_scale² · 1/8 — TensorRT
 * hard-codes 1/√64 here whatever the head size (`scaleBmm1 = scaleQkv * scaleQkv * 0.125`) — and the context
 * is requantised with output_ctx_scale, rounding half to even and saturating to [-128, 127] as the kernel's
 * float-to-int8 conversion does. TensorRT also quantises the probabilities to int8 with dq_probs before P·V;
 * this reference keeps them in float, so TensorRT's own outputs may differ by about one int8 step.
 */
import { Tensor } from "../ir/tensor.js";
import { roundHalfEven } from "../ops/elementwise-util.js";
import { checkQkvContract, type Fail } from "./qkv-contract.js";
import { type Attend, runQkvAttention } from "./qkv-to-context.js";

/** TensorRT's score scale in the int8 interleaved kernels, for every head size. */
export const INT8_INTERLEAVED_SCALE = 0.125;

export interface Int8InterleavedParams {
  numHeads: number;
  hiddenSize: number;
  /** int32 [B + 1]. */
  cuSeqlens: readonly number[];
  /** dim 0 of the plugin's third input. */
  maxSeqlen?: number;
  qkvScale: number;
  ctxScale: number;
}

/** Round half to even, then saturate to int8 (CUDA's cvt.rni.sat.s8.f32). */
export function quantizeInt8(x: number): number {
  if (Number.isNaN(x)) return 0;
  return Math.max(-128, Math.min(127, roundHalfEven(x)));
}

export function runInt8Interleaved(
  qkv: Tensor,
  p: Int8InterleavedParams,
  fail: Fail,
  attend: Attend,
): Tensor {
  if (qkv.type !== "int8") fail(`qkv must be int8 (plugin versions 3 and 6), got ${qkv.type}`);
  const d = qkv.dims;
  if (d.length !== 4 || d[0] !== 1 || d[3] !== 1)
    fail(`qkv must be int8 [1, 3E, T, 1] (channel-major, one column per token), got [${d}]`);
  const [, threeE, T] = d as [number, number, number, number];
  // Token-major float32 [T, 3E, 1, 1], the layout of the float var-seqlen op.
  const tokens = new Float32Array(T * threeE);
  const src = qkv.data as Int8Array;
  for (let c = 0; c < threeE; c++)
    for (let t = 0; t < T; t++) tokens[t * threeE + c] = src[c * T + t]! * p.qkvScale;
  const asFloat = new Tensor("float32", tokens, [T, threeE, 1, 1]);
  const layout = checkQkvContract(
    {
      qkv: asFloat,
      numHeads: p.numHeads,
      hiddenSize: p.hiddenSize,
      cuSeqlens: p.cuSeqlens,
      maxSeqlen: p.maxSeqlen,
      varSeqlen: true,
    },
    fail,
  );
  const ctx = runQkvAttention(asFloat, layout, { scale: INT8_INTERLEAVED_SCALE }, fail, attend)
    .data as Float32Array;
  const E = layout.hiddenSize;
  const out = new Int8Array(E * T);
  for (let c = 0; c < E; c++)
    for (let t = 0; t < T; t++) out[c * T + t] = quantizeInt8(ctx[t * E + c]! / p.ctxScale);
  return new Tensor("int8", out, [1, E, T, 1]);
}
