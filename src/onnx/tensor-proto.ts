/**
 * TensorProto ↔ Tensor. Import accepts every storage form exporters use (raw_data, the typed
 * repeated fields, external data); export always writes raw_data, the compact form.
 */
import { ModelLoadError } from "../errors.js";
import { bytesPerElement, type DType, dtypeFromOnnx, dtypeToOnnx, type TypedArray } from "../ir/dtype.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { parseExternalData, readExternalData } from "./external-data.js";
import { bytesOf, typedArrayFromBytes } from "./little-endian.js";
import { dataTypeName, type Int64Like, int64ToBigInt, int64ToNumber, onnx } from "./proto.js";

type TensorProto = onnx.ITensorProto;

export interface TensorDecodeOptions {
  /** Folder that external data locations are relative to. */
  baseDir?: string;
  /** Called with each tensor's byte size before its data is allocated or read (a memory cap throws here). */
  reserve?: (name: string, bytes: number) => void;
}

function tensorDims(name: string, proto: TensorProto): number[] {
  return (proto.dims ?? []).map((d) => {
    const n = int64ToNumber(d as Int64Like);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new ModelLoadError(`tensor '${name}': invalid dimension ${n}`);
    return n;
  });
}

function tensorDType(name: string, code: number): DType {
  const dtype = dtypeFromOnnx(code);
  if (!dtype) {
    throw new ModelLoadError(
      `tensor '${name}' has data type ${dataTypeName(code)}, which mhafuse does not support`,
    );
  }
  return dtype;
}

/** The typed repeated field that holds `dtype` values when raw_data is not used. */
function fromTypedField(name: string, dtype: DType, proto: TensorProto, count: number): TypedArray {
  const check = (got: number): void => {
    if (got !== count) {
      throw new ModelLoadError(`tensor '${name}': holds ${got} ${dtype} values, its shape needs ${count}`);
    }
  };
  switch (dtype) {
    case "float32": {
      const src = proto.floatData ?? [];
      check(src.length);
      return Float32Array.from(src);
    }
    case "float64": {
      const src = proto.doubleData ?? [];
      check(src.length);
      return Float64Array.from(src);
    }
    case "int64": {
      const src = proto.int64Data ?? [];
      check(src.length);
      return BigInt64Array.from(src, (v) => int64ToBigInt(v as Int64Like));
    }
    default: {
      // int32_data also carries int8, uint8, bool and float16 (as the half's bit pattern).
      const src = proto.int32Data ?? [];
      check(src.length);
      if (dtype === "int32") return Int32Array.from(src);
      if (dtype === "int8") return Int8Array.from(src);
      if (dtype === "float16") return Uint16Array.from(src);
      if (dtype === "bool") return Uint8Array.from(src, (v) => (v ? 1 : 0));
      return Uint8Array.from(src);
    }
  }
}

export function tensorFromProto(
  proto: TensorProto,
  opts: TensorDecodeOptions = {},
  fallbackName = "",
): Tensor {
  const name = proto.name || fallbackName;
  const dtype = tensorDType(name, proto.dataType ?? 0);
  const dims = tensorDims(name, proto);
  const count = sizeOf(dims);
  if (!Number.isSafeInteger(count * bytesPerElement(dtype))) {
    throw new ModelLoadError(`tensor '${name}': shape [${dims}] is too large`);
  }
  if (proto.segment) throw new ModelLoadError(`tensor '${name}': segmented tensors are not supported`);
  const byteLength = count * bytesPerElement(dtype);
  // The memory cap is charged once the bytes present are known to match the shape (a shape the data
  // does not back is MODEL_INVALID, whatever its size), and before the data is copied or read.
  let data: TypedArray;
  if (proto.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const ref = parseExternalData(name, proto.externalData ?? []);
    opts.reserve?.(name, byteLength);
    data = typedArrayFromBytes(dtype, readExternalData(name, ref, opts.baseDir, byteLength));
  } else if (proto.rawData && proto.rawData.length > 0) {
    if (proto.rawData.length !== byteLength) {
      throw new ModelLoadError(
        `tensor '${name}': raw_data has ${proto.rawData.length} bytes, ${dtype}[${dims}] needs ${byteLength}`,
      );
    }
    opts.reserve?.(name, byteLength);
    data = typedArrayFromBytes(dtype, proto.rawData);
  } else {
    data = fromTypedField(name, dtype, proto, count);
    opts.reserve?.(name, byteLength);
  }
  return new Tensor(dtype, data, dims);
}

export function tensorToProto(tensor: Tensor, name = ""): onnx.TensorProto {
  return onnx.TensorProto.create({
    name,
    dims: [...tensor.dims],
    dataType: dtypeToOnnx(tensor.type),
    // Copy: the proto must not alias a tensor whose buffer may be a view into something larger.
    rawData: bytesOf(tensor.data).slice(),
  });
}

/** A tensor stored in an external file at `location`/`offset` (the caller writes the bytes). */
export function externalTensorProto(
  tensor: Tensor,
  name: string,
  location: string,
  offset: number,
): onnx.TensorProto {
  return onnx.TensorProto.create({
    name,
    dims: [...tensor.dims],
    dataType: dtypeToOnnx(tensor.type),
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: "location", value: location },
      { key: "offset", value: String(offset) },
      { key: "length", value: String(tensor.data.byteLength) },
    ],
  });
}
