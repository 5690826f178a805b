/**
 * Little-endian byte buffers ↔ typed arrays. ONNX raw_data, external data files and the fixtures'
 * JSON tensors all store little-endian row-major bytes; every platform Node 20 runs on is
 * little-endian, so a byte copy is the conversion (the copy also fixes alignment: protobuf byte
 * fields are unaligned views into the file buffer).
 */
import { endianness } from "node:os";
import { assert } from "../errors.js";
import { allocate, bytesPerElement, type DType, type TypedArray } from "../ir/dtype.js";

assert(endianness() === "LE", "ONNX tensor bytes are little-endian; big-endian hosts are not supported");

/** Element count that `byteLength` bytes hold, or undefined when it is not a whole number of elements. */
export function elementCount(dtype: DType, byteLength: number): number | undefined {
  const size = bytesPerElement(dtype);
  return byteLength % size === 0 ? byteLength / size : undefined;
}

/** A fresh, aligned typed array holding a copy of `bytes` (length must be a multiple of the element size). */
export function typedArrayFromBytes(dtype: DType, bytes: Uint8Array): TypedArray {
  const count = elementCount(dtype, bytes.byteLength);
  assert(count !== undefined, `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  const out = allocate(dtype, count);
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
  return out;
}

/** The array's bytes (a view, no copy). */
export function bytesOf(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
