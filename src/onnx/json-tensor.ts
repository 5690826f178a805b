/**
 * The fixtures' JSON tensor encoding: `{dtype, shape, data}` where data is the base64 of the
 * little-endian row-major bytes. The CLI reads inputs and writes outputs in the same form.
 */
import { InputError } from "../errors.js";
import { isDType } from "../ir/dtype.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { bytesOf, elementCount, typedArrayFromBytes } from "./little-endian.js";

export interface JsonTensor {
  dtype: string;
  shape: number[];
  data: string;
}

export function tensorFromJson(json: JsonTensor, name = "tensor"): Tensor {
  const { dtype, shape, data } = json ?? ({} as JsonTensor);
  if (typeof dtype !== "string" || !isDType(dtype)) {
    throw new InputError(`${name}: unsupported dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(
      `${name}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
    );
  }
  if (typeof data !== "string") throw new InputError(`${name}: data must be a base64 string`);
  const bytes = Buffer.from(data, "base64");
  const count = elementCount(dtype, bytes.byteLength);
  if (count !== sizeOf(shape)) {
    throw new InputError(
      `${name}: data has ${bytes.byteLength} bytes, ${dtype}[${shape}] needs ${sizeOf(shape)} elements`,
    );
  }
  return new Tensor(dtype, typedArrayFromBytes(dtype, bytes), shape);
}

export function tensorToJson(t: Tensor): JsonTensor {
  return { dtype: t.type, shape: [...t.dims], data: Buffer.from(bytesOf(t.data)).toString("base64") };
}
