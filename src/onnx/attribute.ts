/** AttributeProto ↔ Attribute, for every attribute type our IR holds (subgraphs recursively). */
import { ModelLoadError } from "../errors.js";
import type { Attribute, Graph } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { type Int64Like, int64ToNumber, onnx, toInt64 } from "./proto.js";

const AttrType = onnx.AttributeProto.AttributeType;
const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

/** How the caller turns nested protos into IR (tensors need the model folder; graphs recurse). */
export interface AttributeDecoders {
  tensor(proto: onnx.ITensorProto, fallbackName: string): Tensor;
  graph(proto: onnx.IGraphProto): Graph;
}

export interface AttributeEncoders {
  tensor(t: Tensor): onnx.ITensorProto;
  graph(g: Graph): onnx.IGraphProto;
}

const has = (a: onnx.IAttributeProto, field: keyof onnx.IAttributeProto): boolean =>
  Object.hasOwn(a, field) && a[field] != null;

/** Very old files leave `type` unset (UNDEFINED); the populated field then says what it is. */
function inferType(a: onnx.IAttributeProto): number {
  if (a.floats?.length) return AttrType.FLOATS;
  if (a.ints?.length) return AttrType.INTS;
  if (a.strings?.length) return AttrType.STRINGS;
  if (a.tensors?.length) return AttrType.TENSORS;
  if (a.graphs?.length) return AttrType.GRAPHS;
  if (has(a, "t")) return AttrType.TENSOR;
  if (has(a, "g")) return AttrType.GRAPH;
  if (has(a, "s")) return AttrType.STRING;
  if (has(a, "f")) return AttrType.FLOAT;
  if (has(a, "i")) return AttrType.INT;
  return AttrType.UNDEFINED;
}

export function attributeFromProto(
  a: onnx.IAttributeProto,
  where: string,
  decode: AttributeDecoders,
): Attribute {
  const name = a.name ?? "";
  const type = a.type || inferType(a);
  switch (type) {
    case AttrType.FLOAT:
      return { type: "float", value: a.f ?? 0 };
    case AttrType.INT:
      return { type: "int", value: int64ToNumber((a.i ?? 0) as Int64Like) };
    case AttrType.STRING:
      return { type: "string", value: utf8Decoder.decode(a.s ?? new Uint8Array()) };
    case AttrType.FLOATS:
      return { type: "floats", value: [...(a.floats ?? [])] };
    case AttrType.INTS:
      return { type: "ints", value: (a.ints ?? []).map((v) => int64ToNumber(v as Int64Like)) };
    case AttrType.STRINGS:
      return { type: "strings", value: (a.strings ?? []).map((s) => utf8Decoder.decode(s)) };
    case AttrType.TENSOR:
      if (!a.t) throw new ModelLoadError(`${where}: tensor attribute '${name}' has no tensor`);
      return { type: "tensor", value: decode.tensor(a.t, `${where}.${name}`) };
    case AttrType.TENSORS:
      return {
        type: "tensors",
        value: (a.tensors ?? []).map((t, i) => decode.tensor(t, `${where}.${name}[${i}]`)),
      };
    case AttrType.GRAPH:
      if (!a.g) throw new ModelLoadError(`${where}: graph attribute '${name}' has no graph`);
      return { type: "graph", value: decode.graph(a.g) };
    default: {
      const typeName = AttrType[type] ?? `type ${type}`;
      throw new ModelLoadError(`${where}: attribute '${name}' of type ${typeName} is not supported`);
    }
  }
}

export function attributeToProto(
  name: string,
  attr: Attribute,
  encode: AttributeEncoders,
): onnx.AttributeProto {
  switch (attr.type) {
    case "float":
      return onnx.AttributeProto.create({ name, type: AttrType.FLOAT, f: attr.value });
    case "int":
      return onnx.AttributeProto.create({ name, type: AttrType.INT, i: toInt64(attr.value) });
    case "string":
      return onnx.AttributeProto.create({ name, type: AttrType.STRING, s: utf8Encoder.encode(attr.value) });
    case "floats":
      return onnx.AttributeProto.create({ name, type: AttrType.FLOATS, floats: attr.value });
    case "ints":
      return onnx.AttributeProto.create({
        name,
        type: AttrType.INTS,
        ints: attr.value.map((v) => toInt64(v)),
      });
    case "strings":
      return onnx.AttributeProto.create({
        name,
        type: AttrType.STRINGS,
        strings: attr.value.map((s) => utf8Encoder.encode(s)),
      });
    case "tensor":
      return onnx.AttributeProto.create({ name, type: AttrType.TENSOR, t: encode.tensor(attr.value) });
    case "tensors":
      return onnx.AttributeProto.create({
        name,
        type: AttrType.TENSORS,
        tensors: attr.value.map(encode.tensor),
      });
    case "graph":
      return onnx.AttributeProto.create({ name, type: AttrType.GRAPH, g: encode.graph(attr.value) });
  }
}
