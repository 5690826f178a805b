/**
 * What a webgpu run holds per graph value: a host Tensor (feeds, initializers, shape chains computed on the
 * host) or a DeviceValue (float32/int32 data in a GPU buffer; in fp16 mode a float32 value may be stored as
 * IEEE f16 — `f16` — while its logical dtype stays float32, so dtype checks and shape contracts see the model's
 * types and only kernels look at the storage). DeviceValue has the shape-facing surface of a
 * Tensor (type, dims, rank, size, reshape), so the shape-only op contracts — Reshape, Squeeze, Unsqueeze,
 * Flatten, Identity, Shape, Size — run on it unchanged, never touching data: that is how aliases and the host
 * shape chains read device tensors without a read-back.
 */
import { Tensor as HostTensor, type Tensor } from "../../../ir/tensor.js";
import type { GpuTensor } from "../kernels/common.js";

export type DeviceDType = "float32" | "int32";

export class DeviceValue implements GpuTensor {
  readonly kind = "device";
  readonly dims: readonly number[];

  constructor(
    readonly type: DeviceDType,
    dims: readonly number[],
    readonly buffer: GPUBuffer,
    /** float32 values only: stored as f16 (fp16 mode). */
    readonly f16 = false,
  ) {
    this.dims = Object.freeze([...dims]);
  }

  /** Bytes of the stored elements (f16 storage rounds up to whole u32 pairs, as the cast kernel reads them). */
  get bytes(): number {
    return storageBytes(this.size, this.f16);
  }

  get size(): number {
    return this.dims.reduce((a, b) => a * b, 1);
  }

  get rank(): number {
    return this.dims.length;
  }

  /** Same buffer, new dims (an alias: no copy, no dispatch). */
  reshape(dims: readonly number[]): DeviceValue {
    return new DeviceValue(this.type, dims, this.buffer, this.f16);
  }
}

/** Bytes of `n` elements: 4 each, or f16 rounded up to whole u32 pairs (the cast kernel reads pairs). */
export const storageBytes = (n: number, f16: boolean): number => (f16 ? 2 * (n + (n & 1)) : 4 * n);

export type RunValue = Tensor | DeviceValue;

export const isDevice = (v: RunValue | undefined): v is DeviceValue => v instanceof DeviceValue;

/** Lets a shape-only op contract take a device value where its signature says Tensor. */
export const asShapeTensor = (v: RunValue | undefined): Tensor | undefined => v as Tensor | undefined;

/**
 * Stands in for a deferred value in a kernel's `lazyInputs` slot while `accepts` decides: present (so the
 * contract sees the input given) but empty — a kernel that accepts never reads it.
 */
export const LAZY_INPUT: Tensor = new HostTensor("float32", new Float32Array(0), [0]);
