export { type FoundAttention, findQkvProjections } from "./from-model.js";
export {
  concatToInterleaved,
  type PackedQkvWeights,
  type PackOptions,
  packQkvWeights,
  type SeparateQkvWeights,
  unpackQkvWeights,
} from "./qkv-weights.js";
