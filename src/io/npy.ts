/**
 * NumPy .npy files (format versions 1–3): the format people export weights in. Reads little- and big-endian
 * float32/float16/float64/int32/int64 (and C or Fortran order); writes little-endian, C order, version 1.0.
 */
import { InputError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import { allocate, bytesPerElement } from "../ir/dtype.js";
import { sizeOf, stridesOf, Tensor } from "../ir/tensor.js";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const DESCR: Record<string, DType> = {
  f4: "float32",
  f2: "float16",
  f8: "float64",
  i4: "int32",
  i8: "int64",
};
const DESCR_OF: Partial<Record<DType, string>> = {
  float32: "<f4",
  float16: "<f2",
  float64: "<f8",
  int32: "<i4",
  int64: "<i8",
};

function parseHeader(text: string, what: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shape === undefined)
    throw new InputError(`${what}: not a valid .npy header: ${text.trim()}`);
  const dims = shape
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  return { descr, fortran: fortran === "True", shape: dims };
}

/** C-order copy of data stored in Fortran (column-major) order. */
function fromFortran<T extends DType>(t: T, data: ReturnType<typeof allocate<T>>, dims: number[]) {
  const out = allocate(t, data.length);
  const c = stridesOf(dims);
  const f: number[] = [];
  let acc = 1;
  for (const d of dims) {
    f.push(acc);
    acc *= d;
  }
  for (let i = 0; i < data.length; i++) {
    let rem = i;
    let src = 0;
    for (let a = 0; a < dims.length; a++) {
      const idx = Math.floor(rem / c[a]!);
      rem -= idx * c[a]!;
      src += idx * f[a]!;
    }
    (out as Float32Array)[i] = (data as Float32Array)[src]!;
  }
  return out;
}

export function readNpy(bytes: Uint8Array, what = "npy"): Tensor {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m))
    throw new InputError(`${what}: not a .npy file (bad magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder(major >= 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(headerStart, headerStart + headerLen),
  );
  const { descr, fortran, shape } = parseHeader(header, what);
  const endian = descr[0];
  const type = DESCR[descr.slice(1)];
  if (!type || !"<>|=".includes(endian!))
    throw new InputError(
      `${what}: dtype '${descr}' is not supported (float32, float16, float64, int32, int64)`,
    );
  const n = sizeOf(shape);
  const width = bytesPerElement(type);
  const start = headerStart + headerLen;
  if (bytes.length < start + n * width)
    throw new InputError(
      `${what}: truncated: shape (${shape}) needs ${n * width} data bytes, file has ${bytes.length - start}`,
    );
  const raw = new Uint8Array(bytes.subarray(start, start + n * width)); // aligned copy
  if (endian === ">" && width > 1)
    for (let i = 0; i < raw.length; i += width) raw.subarray(i, i + width).reverse();
  const data = allocate(type, n);
  new Uint8Array(data.buffer).set(raw);
  return new Tensor(type, fortran && shape.length > 1 ? fromFortran(type, data, shape) : data, shape);
}

export function writeNpy(t: Tensor): Uint8Array {
  const descr = DESCR_OF[t.type];
  if (!descr) throw new InputError(`writeNpy: dtype ${t.type} is not supported`);
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += `${" ".repeat((64 - (total % 64)) % 64)}\n`;
  const out = new Uint8Array(10 + header.length + t.data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), 10 + header.length);
  return out;
}
