/** ONNX import/export: the only door between .onnx files and the engine's IR. */
export { type JsonTensor, tensorFromJson, tensorToJson } from "./json-tensor.js";
export { type LoadOptions, loadModel, loadModelSync, MAX_OPSET, MIN_OPSET, modelFromBytes } from "./load.js";
export { minIrVersionForOpset, modelFromGraph, type SaveOptions, saveModel, saveModelFile } from "./save.js";
export { tensorFromProto, tensorToProto } from "./tensor-proto.js";
