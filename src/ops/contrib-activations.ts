/**
 * onnxruntime's com.microsoft activation ops that its transformer optimizer emits: Gelu (erf), FastGelu
 * (tanh approximation with an optional bias) and BiasGelu (bias add fused into erf GELU), plus QuickGelu.
 */
import { OpError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import type { Node } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import {
  allocateCompute,
  biasGeluErfFloat32Array,
  biasGeluTanhFloat32Array,
  computeView,
  FLOAT_TYPES,
  finishCompute,
  geluErf,
  geluErfFloat32,
  geluErfFloat32Array,
  geluTanh,
  geluTanhFloat32Array,
  inferSameShape,
  requireDType,
  requireInput,
  sigmoid,
} from "./elementwise-util.js";
import { attrFloat, type OpDef, registerOps } from "./registry.js";

const MS = "com.microsoft";

/**
 * y = f(x + bias) with `bias` (optional) a 1-D tensor over x's last axis, the layout onnxruntime requires.
 * The sum is rounded to the storage precision first (float32 for float32/float16), as onnxruntime adds
 * in that type before applying the activation.
 */
function activateWithBias(node: Node, x: Tensor, bias: Tensor | undefined, f: (v: number) => number): Tensor {
  requireDType(node, 0, x.type, FLOAT_TYPES);
  const n = x.size;
  const xs = computeView(x) as Float64Array;
  const out = allocateCompute(x.type, n) as Float64Array;
  if (!bias) {
    for (let i = 0; i < n; i++) out[i] = f(xs[i]!);
    return finishCompute(x.type, out, x.dims);
  }
  if (bias.type !== x.type)
    throw new OpError(node, `bias has dtype ${bias.type} but the input has ${x.type}`);
  const width = x.dims[x.dims.length - 1];
  if (bias.dims.length !== 1 || width === undefined || bias.dims[0] !== width) {
    throw new OpError(
      node,
      `bias must be 1-D with the input's last dimension, got [${bias.dims}] for [${x.dims}]`,
    );
  }
  const bs = computeView(bias) as Float64Array;
  const round: (v: number) => number = x.type === "float64" ? (v) => v : Math.fround;
  for (let row = 0; row < n; row += width) {
    for (let j = 0; j < width; j++) out[row + j] = f(round(xs[row + j]! + bs[j]!));
  }
  return finishCompute(x.type, out, x.dims);
}

/**
 * Float32-only array kernels of one activation (see elementwise-util: monomorphic loops with the
 * activation inlined); they compute what activateWithBias does for float32.
 */
interface Float32Activation {
  plain: (x: Float32Array, y: Float32Array) => void;
  /** y = f(fround(x + bias[j])) with bias a row of `bias.length` elements along x. */
  withBias: (x: Float32Array, bias: Float32Array, y: Float32Array) => void;
}

const geluErf32: Float32Activation = { plain: geluErfFloat32Array, withBias: biasGeluErfFloat32Array };
const geluTanh32: Float32Activation = { plain: geluTanhFloat32Array, withBias: biasGeluTanhFloat32Array };

/** The float32 fast path when x (and bias) are float32 and the bias has the layout activateWithBias checks. */
function activateFloat32(
  k: Float32Activation,
  x: Tensor,
  bias: Tensor | undefined,
  alloc: (length: number) => Float32Array,
): Tensor | undefined {
  if (x.type !== "float32") return undefined;
  const xs = x.data as Float32Array;
  if (!bias) {
    const out = alloc(xs.length);
    k.plain(xs, out);
    return new Tensor("float32", out, x.dims);
  }
  const width = x.dims[x.dims.length - 1];
  if (bias.type !== "float32" || bias.dims.length !== 1 || width === undefined || bias.dims[0] !== width)
    return undefined; // activateWithBias reports the error
  if (width === 0) return undefined;
  const out = alloc(xs.length);
  k.withBias(xs, bias.data as Float32Array, out);
  return new Tensor("float32", out, x.dims);
}

function contribActivation(
  opType: string,
  activation: (node: Node, type: DType) => (v: number) => number,
  biasInput: boolean,
  biasRequired = false,
  float32?: Float32Activation,
): OpDef {
  const types: readonly DType[] = FLOAT_TYPES;
  return {
    opType,
    domain: MS,
    inferTypes: (ctx) => inferSameShape(ctx, types),
    run(ctx, inputs) {
      const node = ctx.node;
      const x = requireInput(node, inputs, 0);
      const bias = biasInput ? (biasRequired ? requireInput(node, inputs, 1) : inputs[1]) : undefined;
      const fast = float32 && activateFloat32(float32, x, bias, computeOf(ctx).allocFloat32);
      if (fast) return [fast];
      return [activateWithBias(node, x, bias, activation(node, x.type))];
    },
  };
}

/** float32/float16 results need only float32 accuracy: the faster erf (see erfFloat32). */
const erfGelu = (_: Node, type: DType) => (type === "float64" ? geluErf : geluErfFloat32);
const Gelu = contribActivation("Gelu", erfGelu, false, false, geluErf32);
const FastGelu = contribActivation("FastGelu", () => geluTanh, true, false, geluTanh32);
const BiasGelu = contribActivation("BiasGelu", erfGelu, true, true, geluErf32);
/** x·sigmoid(alpha·x) (CLIP-style GELU approximation), alpha defaults to 1.702. */
const QuickGelu = contribActivation(
  "QuickGelu",
  (node) => {
    const alpha = attrFloat(node, "alpha", 1.702);
    return (v) => v * sigmoid(alpha * v);
  },
  false,
);

registerOps([Gelu, FastGelu, BiasGelu, QuickGelu]);
