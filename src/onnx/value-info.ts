/** ValueInfoProto (a name plus a tensor type with possibly symbolic dims) ↔ our ValueInfo. */
import { dtypeFromOnnx, dtypeToOnnx } from "../ir/dtype.js";
import type { Dim, ValueInfo } from "../ir/graph.js";
import { type Int64Like, int64ToNumber, onnx } from "./proto.js";

function dimFromProto(d: onnx.TensorShapeProto.IDimension): Dim {
  // `value` is the oneof's case: which of dim_value / dim_param the file set, if any.
  const which = (d as onnx.TensorShapeProto.Dimension).value;
  if (which === "dimValue" && d.dimValue != null) return int64ToNumber(d.dimValue as Int64Like);
  if (which === "dimParam" && d.dimParam) return d.dimParam;
  return null;
}

/**
 * Non-tensor types (sequences, maps, optionals) and element types we do not hold come back without
 * a dtype; the caller decides whether that is acceptable where it appears.
 */
export function valueInfoFromProto(v: onnx.IValueInfoProto): ValueInfo {
  const info: ValueInfo = { name: v.name ?? "" };
  const tensorType = v.type?.tensorType;
  if (!tensorType) return info;
  const dtype = dtypeFromOnnx(tensorType.elemType ?? 0);
  if (dtype) info.dtype = dtype;
  if (tensorType.shape) info.shape = (tensorType.shape.dim ?? []).map(dimFromProto);
  return info;
}

/** The tensor element type code the file declares, undefined for non-tensor values. */
export function declaredElemType(v: onnx.IValueInfoProto): number | undefined {
  return v.type?.tensorType ? (v.type.tensorType.elemType ?? 0) : undefined;
}

function dimToProto(d: Dim): onnx.TensorShapeProto.IDimension {
  if (typeof d === "number") return { dimValue: d };
  if (typeof d === "string") return { dimParam: d };
  return {};
}

/** A ValueInfoProto; without a dtype the type is left out (ONNX then treats it as unknown). */
export function valueInfoToProto(v: ValueInfo): onnx.ValueInfoProto {
  const proto = onnx.ValueInfoProto.create({ name: v.name });
  if (v.dtype) {
    proto.type = onnx.TypeProto.create({
      tensorType: {
        elemType: dtypeToOnnx(v.dtype),
        shape: v.shape ? { dim: v.shape.map(dimToProto) } : undefined,
      },
    });
  }
  return proto;
}
