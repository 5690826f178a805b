export * from "./errors.js";
export type { DType } from "./ir/dtype.js";
export type { Attribute, Dim, Graph, Model, Node, ValueInfo, ValueType } from "./ir/graph.js";
export { Tensor } from "./ir/tensor.js";
export * from "./onnx/index.js";
