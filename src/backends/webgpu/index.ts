/**
 * The webgpu backend's kernels and device layer, for registration behind the runtime seam (issue 8): a kernel
 * takes the session's WebGpuContext and the run's CommandRecorder, checks shapes (OpError naming the input),
 * and records one dispatch; the run submits the recorder once and reads outputs back with ctx.pool.readback.
 */
export { BufferPool, bucketSize, Usage } from "./buffer-pool.js";
export { WebGpuContext } from "./context.js";
export type { SubgroupMatrixConfig, WebGpuDeviceOptions, WebGpuFeatures } from "./device.js";
export { createWebGpuDevice, DAWN_UNSAFE_TOGGLES, WebGpuDevice, WebGpuError } from "./device.js";
export type { AttentionLayout, FlashAttentionArgs, GeneralAttentionArgs } from "./kernels/attention.js";
export {
  attentionFlops,
  flashAttention,
  generalAttention,
  packedQkvAttention,
  varSeqlenQkvAttention,
} from "./kernels/attention.js";
export { castF16ToF32, castF32ToF16 } from "./kernels/cast.js";
export type { GpuTensor } from "./kernels/common.js";
export { binary, broadcastShape, unary } from "./kernels/elementwise.js";
export type { GemmArgs, GemmWeights } from "./kernels/gemm.js";
export { gemm, gemmFlops, releaseGemmWeights, uploadGemmWeights } from "./kernels/gemm.js";
export type { TcTile } from "./kernels/gemm-tc.js";
export { TC_TILE_LARGE, TC_TILE_LARGE_W4, TC_TILE_SMALL } from "./kernels/gemm-tc.js";
export { layerNorm, skipLayerNorm, softmax } from "./kernels/norm.js";
export { PipelineCache } from "./pipeline-cache.js";
export type { F16Kernel, F16Support, MatrixSyntax, Precision, ResolvedPrecision } from "./precision.js";
export { detectF16, f16Bits, f16ToNumber, fromF16, resolvePrecision, toF16 } from "./precision.js";
export type { KernelTiming, RecorderOptions } from "./recorder.js";
export { CommandRecorder } from "./recorder.js";
