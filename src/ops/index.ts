// Every op family registers itself here; importing this module makes all ops available.
// One line per family file — keep the list sorted.
import "./activations.js";
import "./arg-topk.js";
import "./attention.js";
import "./attention23.js";
import "./binary.js";
import "./cast.js";
import "./channel-norm.js";
import "./concat-split.js";
import "./contrib-activations.js";
import "./contrib-attention.js";
import "./conv.js";
import "./conv-transpose.js";
import "./cumsum.js";
import "./detection.js";
import "./einsum.js";
import "./gather.js";
import "./generators.js";
import "./losses.js";
import "./matmul.js";
import "./normalization.js";
import "./pool.js";
import "./qkv-to-context.js";
import "./quantize.js";
import "./rearrange.js";
import "./reduce.js";
import "./reshape.js";
import "./resize.js";
import "./rotary.js";
import "./seqlens-from-mask.js";
import "./softmax.js";
import "./transpose.js";
import "./trt-qkv-plugin.js";
import "./unary.js";
import "./where-clip.js";
import "./windows.js";

export { findOp, getOp, type OpDef, registeredOps, resolveOp } from "./registry.js";
