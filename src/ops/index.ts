// Every op family registers itself here; importing this module makes all ops available.
// One line per family file — keep the list sorted.
import "./attention.js";
import "./attention23.js";
import "./binary.js";
import "./cast.js";
import "./concat-split.js";
import "./contrib-activations.js";
import "./contrib-attention.js";
import "./conv.js";
import "./cumsum.js";
import "./einsum.js";
import "./gather.js";
import "./generators.js";
import "./matmul.js";
import "./normalization.js";
import "./qkv-to-context.js";
import "./reduce.js";
import "./reshape.js";
import "./rotary.js";
import "./seqlens-from-mask.js";
import "./softmax.js";
import "./transpose.js";
import "./trt-qkv-plugin.js";
import "./unary.js";
import "./where-clip.js";

export { findOp, getOp, registeredOps } from "./registry.js";
