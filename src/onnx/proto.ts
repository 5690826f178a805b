/**
 * The ONNX protobuf classes (protobufjs-6 static code generated from onnx.proto) and the conversions
 * between protobuf's 64-bit integers and JS numbers/bigints. Everything that touches `onnx-proto`
 * directly goes through here, so the rest of src/onnx never sees a `Long`.
 */
import onnxProto from "onnx-proto";

export import onnx = onnxProto.onnx;

/** protobufjs hands 64-bit fields back as Long objects (when the `long` package is present) or numbers. */
export type Int64Like = number | { low: number; high: number; unsigned?: boolean };

/** Exact signed 64-bit value of a protobuf int64 field. */
export function int64ToBigInt(v: Int64Like): bigint {
  if (typeof v === "number") return BigInt(v);
  const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? bits : BigInt.asIntN(64, bits);
}

/** int64 field as a JS number; values beyond 2^53 (INT64_MAX "until the end" sentinels) round. */
export function int64ToNumber(v: Int64Like): number {
  return typeof v === "number" ? v : Number(int64ToBigInt(v));
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * A Long-like value protobufjs writes exactly. Passing a plain number for values ≥ 2^63 would wrap
 * around to INT64_MIN in protobufjs, so numbers are clamped into the int64 range first (an imported
 * INT64_MAX that became 2^63 as a number writes back as INT64_MAX).
 */
export function toInt64(v: number | bigint): { low: number; high: number; unsigned: boolean } {
  let b = typeof v === "bigint" ? v : BigInt(Math.trunc(v));
  if (b > INT64_MAX) b = INT64_MAX;
  if (b < INT64_MIN) b = INT64_MIN;
  const bits = BigInt.asUintN(64, b);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: false };
}

/** Names of TensorProto.DataType codes, including the ones newer than this proto file (float8, int4…). */
const DATA_TYPE_NAMES: Record<number, string> = {
  0: "UNDEFINED",
  1: "FLOAT",
  2: "UINT8",
  3: "INT8",
  4: "UINT16",
  5: "INT16",
  6: "INT32",
  7: "INT64",
  8: "STRING",
  9: "BOOL",
  10: "FLOAT16",
  11: "DOUBLE",
  12: "UINT32",
  13: "UINT64",
  14: "COMPLEX64",
  15: "COMPLEX128",
  16: "BFLOAT16",
  17: "FLOAT8E4M3FN",
  18: "FLOAT8E4M3FNUZ",
  19: "FLOAT8E5M2",
  20: "FLOAT8E5M2FNUZ",
  21: "UINT4",
  22: "INT4",
  23: "FLOAT4E2M1",
};

export function dataTypeName(code: number): string {
  return DATA_TYPE_NAMES[code] ?? `data type ${code}`;
}
