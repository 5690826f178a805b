import { TensorError } from "../errors.js";
import { type ArrayFor, allocate, type DType, type TypedArray } from "./dtype.js";
import { floatToHalf, halfToFloat } from "./float16.js";

/** Typed arrays use the platform's byte order: little-endian on every target Node supports, checked anyway. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Row-major strides of a shape. */
export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i]!;
  }
  return s;
}

/**
 * A dense, row-major tensor in host memory. Field names match onnxruntime-node's Tensor
 * (`type`, `dims`, `data`) so feeds and results can be swapped between the two engines.
 * A plain number array holds values for every dtype, float16 included (rounded to half precision); a
 * float16 typed array (Uint16Array) holds the raw half-precision bits.
 */
export class Tensor<T extends DType = DType> {
  readonly type: T;
  readonly dims: readonly number[];
  readonly data: ArrayFor<T>;

  constructor(type: T, data: ArrayFor<T> | readonly number[] | readonly bigint[], dims: readonly number[]) {
    for (const d of dims) {
      if (!Number.isInteger(d) || d < 0) throw new TensorError(`Tensor: invalid dimension ${d} in [${dims}]`);
    }
    const n = sizeOf(dims);
    this.type = type;
    this.dims = Object.freeze([...dims]);
    if (Array.isArray(data)) {
      const arr = allocate(type, data.length);
      if (type === "int64")
        for (let i = 0; i < data.length; i++) (arr as BigInt64Array)[i] = BigInt(data[i]!);
      else if (type === "float16")
        for (let i = 0; i < data.length; i++) (arr as Uint16Array)[i] = floatToHalf(Number(data[i]!));
      else for (let i = 0; i < data.length; i++) (arr as Float32Array)[i] = Number(data[i]!);
      this.data = arr;
    } else {
      this.data = data as ArrayFor<T>;
    }
    if (this.data.length !== n) {
      throw new TensorError(
        `Tensor: ${type} data has ${this.data.length} elements but dims [${dims}] need ${n}`,
      );
    }
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.dims.length;
  }

  static zeros<T extends DType>(type: T, dims: readonly number[]): Tensor<T> {
    return new Tensor(type, allocate(type, sizeOf(dims)), dims);
  }

  /** Same data, new dims (no copy). */
  reshape(dims: readonly number[]): Tensor<T> {
    return new Tensor(this.type, this.data, dims);
  }

  /** Element i as a JS number (int64 converted, float16 decoded). */
  getNumber(i: number): number {
    const v = this.data[i]!;
    if (this.type === "float16") return halfToFloat(v as number);
    return Number(v);
  }

  /** All elements as plain numbers (int64 converted, float16 decoded). For small tensors: shapes, axes. */
  toNumbers(): number[] {
    const out = new Array<number>(this.size);
    for (let i = 0; i < out.length; i++) out[i] = this.getNumber(i);
    return out;
  }

  /**
   * Integer data as int32 when every value fits, else undefined (also for float types). int64 is read through
   * its low and high 32-bit words — no BigInt per element: a [32, 128] batch of token ids took 0.2 ms a Gather
   * by getNumber on the H200's host, in a replayed run's critical path.
   */
  toInt32(): Int32Array | undefined {
    const d = this.data;
    if (d instanceof Int32Array) return d.slice();
    if (d instanceof BigInt64Array) {
      const out = new Int32Array(d.length);
      if (LITTLE_ENDIAN) {
        const w = new Int32Array(d.buffer, d.byteOffset, 2 * d.length);
        for (let i = 0; i < d.length; i++) {
          const lo = w[2 * i]!;
          if (w[2 * i + 1] !== lo >> 31) return undefined; // the high word is not lo's sign: out of int32
          out[i] = lo;
        }
      } else {
        for (let i = 0; i < d.length; i++) {
          const v = d[i]!;
          if (v < -2147483648n || v > 2147483647n) return undefined;
          out[i] = Number(v);
        }
      }
      return out;
    }
    // int8, uint8 and bool always fit (float16's Uint16Array is not an integer type).
    if (d instanceof Int8Array || d instanceof Uint8Array) return Int32Array.from(d);
    return undefined;
  }

  /** A float64 copy of the data: the common currency of reference kernels. */
  toFloat64(): Float64Array {
    const out = new Float64Array(this.size);
    for (let i = 0; i < out.length; i++) out[i] = this.getNumber(i);
    return out;
  }
}

export type AnyTensor = Tensor<DType>;
export type { TypedArray };
