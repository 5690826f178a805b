/**
 * Cast and CastLike between the engine's dtypes. Float → integer truncates toward zero; NaN and values
 * outside the target range are undefined in ONNX, and we give what onnxruntime gives on x86 (the
 * conversion instruction's "integer indefinite": INT_MIN of int32 for 32-bit and narrower targets, then
 * narrowed; INT64_MIN for int64). Anything → bool is `value != 0` (so NaN → true, as in C).
 * The `saturate` attribute (opset 19) only concerns float8 types, which we do not hold.
 */
import { OpError } from "../errors.js";
import { allocate, type DType, dtypeFromOnnx, isFloat, type TypedArray } from "../ir/dtype.js";
import { floatToHalf } from "../ir/float16.js";
import type { Node, ValueType } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { computeView, requireInput } from "./elementwise-util.js";
import { attrInt, type OpDef, registerOps, type TypeContext } from "./registry.js";

const INT32_MIN = -2147483648;
const TWO_63 = 2 ** 63;
const INT64_MIN = -(2n ** 63n);

/** float → int32 the way cvttsd2si does: truncation, or INT32_MIN when NaN or out of range. */
function floatToInt32(v: number): number {
  return v > -2147483649 && v < 2147483648 ? Math.trunc(v) : INT32_MIN;
}

function floatToInt64(v: number): bigint {
  return v >= -TWO_63 && v < TWO_63 ? BigInt(Math.trunc(v)) : INT64_MIN;
}

/** Converts a tensor to `to`; always returns a new tensor (never aliases the input's data). */
export function castTensor(t: Tensor, to: DType): Tensor {
  const n = t.size;
  if (t.type === to) return new Tensor(to, t.data.slice() as TypedArray, t.dims);
  const out = allocate(to, n);
  if (t.type === "int64") {
    const src = t.data as BigInt64Array;
    if (to === "bool") for (let i = 0; i < n; i++) (out as Uint8Array)[i] = src[i] !== 0n ? 1 : 0;
    else if (to === "float16")
      for (let i = 0; i < n; i++) (out as Uint16Array)[i] = floatToHalf(Number(src[i]!));
    else if (isFloat(to)) for (let i = 0; i < n; i++) (out as Float64Array)[i] = Number(src[i]!);
    // Keeping the low 32 bits first makes the typed-array store wrap exactly like a C narrowing cast.
    else for (let i = 0; i < n; i++) (out as Int32Array)[i] = Number(BigInt.asIntN(32, src[i]!));
    return new Tensor(to, out, t.dims);
  }
  // Every other source reads as plain numbers (float16 decoded, bool as 0/1).
  const src = computeView(t) as Float64Array;
  const fromFloat = isFloat(t.type);
  if (to === "bool") {
    for (let i = 0; i < n; i++) (out as Uint8Array)[i] = src[i] !== 0 ? 1 : 0;
  } else if (to === "float16") {
    // float64 → half goes through float32 (double rounding in rare ties), as onnxruntime's conversion does.
    for (let i = 0; i < n; i++) (out as Uint16Array)[i] = floatToHalf(src[i]!);
  } else if (isFloat(to)) {
    (out as Float64Array).set(src);
  } else if (to === "int64") {
    const dst = out as BigInt64Array;
    if (fromFloat) for (let i = 0; i < n; i++) dst[i] = floatToInt64(src[i]!);
    else for (let i = 0; i < n; i++) dst[i] = BigInt(src[i]!);
  } else if (fromFloat) {
    for (let i = 0; i < n; i++) (out as Int32Array)[i] = floatToInt32(src[i]!);
  } else {
    (out as Int32Array).set(src); // integer → integer: the store wraps modulo 2^bits, like C
  }
  return new Tensor(to, out, t.dims);
}

function targetOf(node: Node): DType {
  const code = attrInt(node, "to");
  const dtype = dtypeFromOnnx(code);
  if (!dtype) throw new OpError(node, `cannot cast to ONNX data type ${code} (not supported by mhafuse)`);
  return dtype;
}

function sameShape(ctx: TypeContext, dtype: DType): ValueType[] {
  const shape = ctx.inputs[0]?.shape;
  return [{ dtype, shape: shape ? [...shape] : undefined }];
}

const Cast: OpDef = {
  opType: "Cast",
  inferTypes: (ctx) => sameShape(ctx, targetOf(ctx.node)),
  run: (ctx, inputs) => [castTensor(requireInput(ctx.node, inputs, 0), targetOf(ctx.node))],
};

const CastLike: OpDef = {
  opType: "CastLike",
  inferTypes(ctx) {
    const target = ctx.inputs[1];
    if (!target) throw new OpError(ctx.node, "cannot infer the output dtype: target_type has no known type");
    return sameShape(ctx, target.dtype);
  },
  run: (ctx, inputs) => [
    castTensor(requireInput(ctx.node, inputs, 0), requireInput(ctx.node, inputs, 1).type),
  ],
};

registerOps([Cast, CastLike]);
