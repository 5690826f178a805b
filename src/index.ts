export { type QkvToContextOptions, qkvToContext } from "./attention/qkv-to-context.js";
export * from "./errors.js";
export type { DType } from "./ir/dtype.js";
export type { Attribute, Dim, Graph, Model, Node, ValueInfo, ValueType } from "./ir/graph.js";
export { Tensor } from "./ir/tensor.js";
export * from "./onnx/index.js";
export { concatToInterleaved, packQkvWeights, unpackQkvWeights } from "./packing/index.js";
