import { InputError } from "../errors.js";
import { type DType, isDType } from "../ir/dtype.js";
import type { ValueInfo } from "../ir/graph.js";
import { formatShape } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";

/** Anything shaped like a tensor: ours, onnxruntime-node's, or a plain object. */
export interface TensorLike {
  type: string;
  dims: readonly number[];
  data: unknown;
}

/** The typed array class that holds each dtype; data of another class would be read as the wrong numbers. */
const ARRAY_OF: Record<DType, { name: string; prototype: object }> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

function checkArrayKind(name: string, type: DType, data: unknown): void {
  if (Array.isArray(data)) return;
  const want = ARRAY_OF[type];
  if (data instanceof (want as unknown as typeof Uint8Array)) return;
  const kind = ArrayBuffer.isView(data) ? data.constructor.name : typeof data;
  throw new InputError(`input '${name}': ${type} data must be a ${want.name} or an array, got ${kind}`, {
    input: name,
    expected: want.name,
  });
}

function toTensor(name: string, value: TensorLike): Tensor {
  if (value instanceof Tensor) {
    checkArrayKind(name, value.type, value.data);
    return value;
  }
  if (!value || typeof value !== "object" || !("dims" in value) || !("data" in value)) {
    throw new InputError(`input '${name}': expected a Tensor ({type, dims, data}), got ${typeof value}`);
  }
  if (!isDType(value.type))
    throw new InputError(`input '${name}': unsupported tensor type '${value.type}'`, { input: name });
  checkArrayKind(name, value.type, value.data);
  try {
    return new Tensor(value.type, value.data as Tensor["data"], value.dims);
  } catch (err) {
    throw new InputError(`input '${name}': ${(err as Error).message}`, { input: name });
  }
}

/**
 * Checks feeds against the model's declared inputs: every input present, no unknown names, dtypes equal,
 * ranks equal, fixed dims equal, and each symbolic dim bound to one size across all inputs.
 */
export function validateFeeds(
  inputs: readonly ValueInfo[],
  feeds: Record<string, TensorLike>,
): Record<string, Tensor> {
  const known = new Set(inputs.map((i) => i.name));
  for (const name of Object.keys(feeds)) {
    if (!known.has(name)) {
      throw new InputError(`unknown input '${name}'; the model's inputs are: ${[...known].join(", ")}`, {
        input: name,
        expected: `one of ${[...known].join(", ")}`,
      });
    }
  }
  const bound = new Map<string, { size: number; by: string }>();
  const out: Record<string, Tensor> = {};
  for (const info of inputs) {
    const given = feeds[info.name];
    if (given === undefined) {
      throw new InputError(
        `missing input '${info.name}' (expected ${info.dtype ?? "?"}${formatShape(info.shape)}); feeds given: ${Object.keys(feeds).join(", ") || "none"}`,
        { input: info.name, expected: `${info.dtype ?? "?"}${formatShape(info.shape)}` },
      );
    }
    const t = toTensor(info.name, given);
    const expected = `${info.dtype ?? "?"}${formatShape(info.shape)}`;
    const got = `${t.type}[${t.dims.join(",")}]`;
    if (info.dtype && t.type !== (info.dtype as DType)) {
      throw new InputError(
        `input '${info.name}': expected dtype ${info.dtype}, got ${t.type} (expected ${expected}, given ${got})`,
        { input: info.name, expected: `${info.dtype ?? "?"}${formatShape(info.shape)}` },
      );
    }
    if (info.shape) {
      if (info.shape.length !== t.rank) {
        throw new InputError(
          `input '${info.name}': expected rank ${info.shape.length} ${expected}, given ${got}`,
          { input: info.name, expected: `${info.dtype ?? "?"}${formatShape(info.shape)}` },
        );
      }
      info.shape.forEach((d, axis) => {
        const size = t.dims[axis]!;
        if (typeof d === "number" && d !== size) {
          throw new InputError(
            `input '${info.name}': dim ${axis} must be ${d} (expected ${expected}, given ${got})`,
            { input: info.name, expected: `${info.dtype ?? "?"}${formatShape(info.shape)}` },
          );
        }
        if (typeof d === "string") {
          const prev = bound.get(d);
          if (prev && prev.size !== size) {
            throw new InputError(
              `input '${info.name}': dim ${axis} ('${d}') is ${size}, but '${prev.by}' set '${d}' = ${prev.size} (expected ${expected}, given ${got})`,
              { input: info.name, expected: `${info.dtype ?? "?"}${formatShape(info.shape)}` },
            );
          }
          if (!prev) bound.set(d, { size, by: info.name });
        }
      });
    }
    out[info.name] = t;
  }
  return out;
}
