/**
 * The KServe / Triton Open Inference Protocol v2 (REST) data model: tensors as JSON (`{name, shape, datatype,
 * data}`) or in the binary tensor data extension (a JSON header whose length is in the
 * `Inference-Header-Content-Length` header, then each tensor's raw little-endian bytes). Conversions to and
 * from mhafuse Tensors, with the request checked against the model's declared inputs.
 */
import type { DType } from "../ir/dtype.js";
import type { ValueInfo } from "../ir/graph.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { typedArrayFromBytes } from "../onnx/little-endian.js";

export const HEADER_LENGTH = "inference-header-content-length";

/** Protocol datatype names ↔ mhafuse dtypes. */
const DATATYPES: [string, DType][] = [
  ["FP32", "float32"],
  ["FP16", "float16"],
  ["FP64", "float64"],
  ["INT64", "int64"],
  ["INT32", "int32"],
  ["INT8", "int8"],
  ["UINT8", "uint8"],
  ["BOOL", "bool"],
];
const TO_DTYPE = new Map(DATATYPES);
const TO_DATATYPE = new Map(DATATYPES.map(([a, b]) => [b, a]));

export function datatypeOf(dtype: DType): string {
  return TO_DATATYPE.get(dtype) ?? dtype.toUpperCase();
}

/** A client mistake: answered with HTTP 400 (404 for unknown models) and the protocol's `{error}` body. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly code = "INPUT_INVALID",
  ) {
    super(message);
  }
}

export interface RequestTensor {
  name: string;
  shape: number[];
  datatype: string;
  data?: unknown;
  parameters?: { binary_data_size?: number };
}

export interface InferRequest {
  id?: string;
  inputs: RequestTensor[];
  outputs?: { name: string; parameters?: { binary_data?: boolean } }[];
  parameters?: { binary_data_output?: boolean };
}

export interface ResponseTensor {
  name: string;
  shape: number[];
  datatype: string;
  data?: (number | boolean)[];
  parameters?: { binary_data_size: number };
}

/** Splits a request body into its JSON header and the binary section (empty without the extension). */
export function splitBody(
  body: Buffer,
  headerLength: string | undefined,
): { header: unknown; binary: Buffer } {
  const n = headerLength === undefined ? body.length : Number(headerLength);
  if (!Number.isInteger(n) || n < 0 || n > body.length)
    throw new RequestError(`${HEADER_LENGTH} is ${headerLength}, the body has ${body.length} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(body.subarray(0, n).toString("utf8"));
  } catch (e) {
    throw new RequestError(`the request is not valid JSON: ${(e as Error).message}`);
  }
  return { header, binary: body.subarray(n) };
}

function flatten(data: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(data)) for (const d of data) flatten(d, out);
  else out.push(data);
  return out;
}

/** Checks the request against the model's inputs and builds the feeds. */
export function feedsFromRequest(
  req: unknown,
  binary: Buffer,
  inputs: readonly ValueInfo[],
): Record<string, Tensor> {
  const r = req as InferRequest;
  if (!r || typeof r !== "object" || !Array.isArray(r.inputs))
    throw new RequestError("the request needs an 'inputs' list");
  const declared = new Map(inputs.map((i) => [i.name, i]));
  const feeds: Record<string, Tensor> = {};
  let offset = 0;
  for (const t of r.inputs) {
    if (!t || typeof t.name !== "string") throw new RequestError("every input needs a 'name'");
    const info = declared.get(t.name);
    if (!info)
      throw new RequestError(`unknown input '${t.name}'; the model takes ${[...declared.keys()].join(", ")}`);
    const dtype = TO_DTYPE.get(t.datatype);
    if (!dtype) throw new RequestError(`input '${t.name}': unknown datatype '${t.datatype}'`);
    if (info.dtype && dtype !== info.dtype)
      throw new RequestError(
        `input '${t.name}' is ${datatypeOf(info.dtype)} in the model, got ${t.datatype}`,
      );
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d < 0))
      throw new RequestError(`input '${t.name}': shape must be a list of non-negative integers`);
    if (
      info.shape &&
      (info.shape.length !== t.shape.length ||
        info.shape.some((d, i) => typeof d === "number" && d !== t.shape[i]))
    )
      throw new RequestError(
        `input '${t.name}' has shape [${t.shape}], the model declares [${info.shape.map((d) => d ?? "?")}]`,
      );
    const n = sizeOf(t.shape);
    const size = t.parameters?.binary_data_size;
    if (size !== undefined) {
      const bytesPer = { float32: 4, float16: 2, float64: 8, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1 }[
        dtype
      ];
      if (size !== n * bytesPer || offset + size > binary.length)
        throw new RequestError(
          `input '${t.name}': binary_data_size ${size} does not hold ${n} ${t.datatype} values`,
        );
      feeds[t.name] = new Tensor(
        dtype,
        typedArrayFromBytes(dtype, binary.subarray(offset, offset + size)),
        t.shape,
      );
      offset += size;
      continue;
    }
    const values = flatten(t.data);
    if (values.length !== n)
      throw new RequestError(`input '${t.name}' has ${values.length} values, shape [${t.shape}] needs ${n}`);
    if (
      values.some((v) =>
        dtype === "bool" ? typeof v !== "boolean" && v !== 0 && v !== 1 : typeof v !== "number",
      )
    )
      throw new RequestError(`input '${t.name}': data must be ${dtype === "bool" ? "booleans" : "numbers"}`);
    if (
      (dtype === "int64" || dtype === "int32" || dtype === "int8" || dtype === "uint8") &&
      values.some((v) => !Number.isInteger(v))
    )
      throw new RequestError(`input '${t.name}': ${t.datatype} data must be integers`);
    feeds[t.name] = new Tensor(dtype, values.map(Number), t.shape);
  }
  for (const name of declared.keys())
    if (!(name in feeds)) throw new RequestError(`input '${name}' is missing`);
  return feeds;
}

/** Response tensors: JSON data, or binary chunks appended after the header when asked for. */
export function responseTensors(
  outputs: Record<string, Tensor>,
  req: InferRequest,
): { tensors: ResponseTensor[]; binary: Buffer[] } {
  const requested = req.outputs?.length
    ? req.outputs
    : Object.keys(outputs).map((name) => ({ name, parameters: undefined }));
  const tensors: ResponseTensor[] = [];
  const binary: Buffer[] = [];
  for (const o of requested) {
    const t = outputs[o.name];
    if (!t)
      throw new RequestError(
        `unknown output '${o.name}'; the model returns ${Object.keys(outputs).join(", ")}`,
      );
    const asBinary = o.parameters?.binary_data ?? req.parameters?.binary_data_output ?? false;
    const base = { name: o.name, shape: [...t.dims], datatype: datatypeOf(t.type) };
    if (asBinary) {
      const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      binary.push(bytes);
      tensors.push({ ...base, parameters: { binary_data_size: bytes.length } });
    } else
      tensors.push({
        ...base,
        data: t.type === "bool" ? Array.from(t.data as Uint8Array, Boolean) : t.toNumbers(),
      });
  }
  return { tensors, binary };
}
