import { OpError } from "../errors.js";
import { allocate, type DType } from "../ir/dtype.js";
import { floatToHalf } from "../ir/float16.js";
import type { Node } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";

/**
 * Float kernels compute on Float32Array or Float64Array. float16 has no native JS array, so it is widened to
 * float32 on the way in and rounded back on the way out (what onnxruntime's CPU provider does too).
 */
export type FloatArray = Float32Array | Float64Array;

export type FloatDType = "float32" | "float16" | "float64";

export function isFloatType(t: DType): t is FloatDType {
  return t === "float32" || t === "float16" || t === "float64";
}

/** Throws OpError unless the input is a float tensor; `what` names it in the message. */
export function requireFloat(node: Node, t: Tensor, what: string): asserts t is Tensor<FloatDType> {
  if (!isFloatType(t.type)) throw new OpError(node, `${what} must be a float tensor, got ${t.type}`);
}

/** The tensor's values as float32 or float64; float32/float64 data is returned as is (do not write to it). */
export function floatData(t: Tensor): FloatArray {
  if (t.type === "float32" || t.type === "float64") return t.data as FloatArray;
  const out = new Float32Array(t.size);
  for (let i = 0; i < out.length; i++) out[i] = t.getNumber(i);
  return out;
}

/** The tensor's values as float32 (a copy unless already float32). */
export function float32Data(t: Tensor): Float32Array {
  if (t.type === "float32") return t.data as Float32Array;
  const out = new Float32Array(t.size);
  for (let i = 0; i < out.length; i++) out[i] = t.getNumber(i);
  return out;
}

/** A fresh array to compute a result of `type` in: float64 for float64, float32 otherwise. */
export function allocFloat(type: FloatDType, n: number): FloatArray {
  return type === "float64" ? new Float64Array(n) : new Float32Array(n);
}

/** Wraps computed values as a tensor of `type`, converting (float16, or a mismatched width) when needed. */
export function floatTensor(type: FloatDType, values: FloatArray, dims: readonly number[]): Tensor {
  if (type === "float16") {
    const out = new Uint16Array(values.length);
    for (let i = 0; i < out.length; i++) out[i] = floatToHalf(values[i]!);
    return new Tensor("float16", out, dims);
  }
  if (type === "float32") {
    return new Tensor("float32", values instanceof Float32Array ? values : Float32Array.from(values), dims);
  }
  return new Tensor("float64", values instanceof Float64Array ? values : Float64Array.from(values), dims);
}

/**
 * Wraps float64 results as a tensor of any dtype: the exit of reference kernels that compute every dtype in
 * float64. Integers truncate toward zero (int64 is exact only up to 2^53, enough for shapes, ids and masks).
 */
export function tensorFromFloat64(type: DType, values: Float64Array, dims: readonly number[]): Tensor {
  if (isFloatType(type)) return floatTensor(type, values, dims);
  const out = allocate(type, values.length);
  if (type === "int64") {
    const o = out as BigInt64Array;
    for (let i = 0; i < o.length; i++) o[i] = BigInt(Math.trunc(values[i]!));
  } else if (type === "bool") {
    for (let i = 0; i < out.length; i++) out[i] = values[i] !== 0 ? 1 : 0;
  } else {
    const o = out as Int32Array;
    for (let i = 0; i < o.length; i++) o[i] = Math.trunc(values[i]!);
  }
  return new Tensor(type, out, dims);
}
