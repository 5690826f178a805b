// The package's public surface. Functions are exported through guarded(): whatever they throw leaves as a
// coded MhafuseError (docs/errors.md); internal code imports the unwrapped modules directly.
import { qkvToContext as qkvToContextRaw } from "./engine/qkv.js";
import { verifyFusion as verifyFusionRaw } from "./engine/verify.js";
import { guarded } from "./errors.js";
import { bertInputs as bertInputsRaw, buildBertGraph as buildBertGraphRaw } from "./models/bert.js";
import {
  modelFromGraph as modelFromGraphRaw,
  saveModelFile as saveModelFileRaw,
  saveModel as saveModelRaw,
  tensorFromJson as tensorFromJsonRaw,
  tensorFromProto as tensorFromProtoRaw,
  tensorToJson as tensorToJsonRaw,
  tensorToProto as tensorToProtoRaw,
} from "./onnx/index.js";
import {
  concatToInterleaved as concatToInterleavedRaw,
  packQkvWeights as packQkvWeightsRaw,
  unpackQkvWeights as unpackQkvWeightsRaw,
} from "./packing/index.js";
import { optimizeGraph as optimizeGraphRaw, summarizeReport as summarizeReportRaw } from "./passes/index.js";
import { toOnnxruntime as toOnnxruntimeRaw } from "./passes/to-onnxruntime.js";

export type { QkvToContextOptions } from "./attention/qkv-to-context.js";
export { type GraphOptimizationLevel, InferenceSession, type SessionOptions } from "./engine/session.js";
export type { VerifyResult } from "./engine/verify.js";
export * from "./errors.js";
export { GraphBuilder } from "./ir/builder.js";
export type { DType } from "./ir/dtype.js";
export type { Attribute, Dim, Graph, Model, Node, ValueInfo, ValueType } from "./ir/graph.js";
export { Tensor } from "./ir/tensor.js";
export { BERT_BASE, BERT_TINY, type BertConfig } from "./models/bert.js";
// loadModel, loadModelSync and modelFromBytes guard themselves (they are also used internally).
export {
  type JsonTensor,
  type LoadOptions,
  loadModel,
  loadModelSync,
  MAX_OPSET,
  MIN_OPSET,
  minIrVersionForOpset,
  modelFromBytes,
  type SaveOptions,
} from "./onnx/index.js";
export type { AttentionReport } from "./passes/index.js";

export const qkvToContext = guarded("qkvToContext", qkvToContextRaw);
export const verifyFusion = guarded("verifyFusion", verifyFusionRaw);
export const bertInputs = guarded("bertInputs", bertInputsRaw);
export const buildBertGraph = guarded("buildBertGraph", buildBertGraphRaw);
export const modelFromGraph = guarded("modelFromGraph", modelFromGraphRaw);
export const saveModel = guarded("saveModel", saveModelRaw);
export const saveModelFile = guarded("saveModelFile", saveModelFileRaw);
export const tensorFromJson = guarded("tensorFromJson", tensorFromJsonRaw);
export const tensorToJson = guarded("tensorToJson", tensorToJsonRaw);
export const tensorFromProto = guarded("tensorFromProto", tensorFromProtoRaw);
export const tensorToProto = guarded("tensorToProto", tensorToProtoRaw);
export const concatToInterleaved = guarded("concatToInterleaved", concatToInterleavedRaw);
export const packQkvWeights = guarded("packQkvWeights", packQkvWeightsRaw);
export const unpackQkvWeights = guarded("unpackQkvWeights", unpackQkvWeightsRaw);
export const optimizeGraph = guarded("optimizeGraph", optimizeGraphRaw);
export const summarizeReport = guarded("summarizeReport", summarizeReportRaw);
export const toOnnxruntime = guarded("toOnnxruntime", toOnnxruntimeRaw);
