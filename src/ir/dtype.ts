/** Element types the engine stores. float16 travels as raw IEEE half bits in a Uint16Array. */
export type DType = "float32" | "float16" | "float64" | "int64" | "int32" | "int8" | "uint8" | "bool";

export type TypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int8Array
  | Uint8Array;

export type ArrayFor<T extends DType> = T extends "float32"
  ? Float32Array
  : T extends "float64"
    ? Float64Array
    : T extends "float16"
      ? Uint16Array
      : T extends "int64"
        ? BigInt64Array
        : T extends "int32"
          ? Int32Array
          : T extends "int8"
            ? Int8Array
            : Uint8Array;

export const DTYPES: readonly DType[] = [
  "float32",
  "float16",
  "float64",
  "int64",
  "int32",
  "int8",
  "uint8",
  "bool",
];

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

export function isFloat(t: DType): boolean {
  return t === "float32" || t === "float16" || t === "float64";
}

export function bytesPerElement(t: DType): number {
  switch (t) {
    case "float64":
    case "int64":
      return 8;
    case "float32":
    case "int32":
      return 4;
    case "float16":
      return 2;
    default:
      return 1;
  }
}

export function allocate<T extends DType>(t: T, n: number): ArrayFor<T> {
  switch (t) {
    case "float32":
      return new Float32Array(n) as ArrayFor<T>;
    case "float64":
      return new Float64Array(n) as ArrayFor<T>;
    case "float16":
      return new Uint16Array(n) as ArrayFor<T>;
    case "int64":
      return new BigInt64Array(n) as ArrayFor<T>;
    case "int32":
      return new Int32Array(n) as ArrayFor<T>;
    case "int8":
      return new Int8Array(n) as ArrayFor<T>;
    default:
      return new Uint8Array(n) as ArrayFor<T>;
  }
}

/** ONNX TensorProto.DataType codes for the types we hold. */
const ONNX_CODES: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
};

export function dtypeToOnnx(t: DType): number {
  return ONNX_CODES[t];
}

export function dtypeFromOnnx(code: number): DType | undefined {
  for (const [k, v] of Object.entries(ONNX_CODES)) if (v === code) return k as DType;
  return undefined;
}
