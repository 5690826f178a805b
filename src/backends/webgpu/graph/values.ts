/**
 * What a webgpu run holds per graph value: a host Tensor (feeds, initializers, shape chains computed on the
 * host) or a DeviceValue (float32/int32 data in a GPU buffer). DeviceValue has the shape-facing surface of a
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
  ) {
    this.dims = Object.freeze([...dims]);
  }

  get size(): number {
    return this.dims.reduce((a, b) => a * b, 1);
  }

  get rank(): number {
    return this.dims.length;
  }

  /** Same buffer, new dims (an alias: no copy, no dispatch). */
  reshape(dims: readonly number[]): DeviceValue {
    return new DeviceValue(this.type, dims, this.buffer);
  }
}

export type RunValue = Tensor | DeviceValue;

export const isDevice = (v: RunValue | undefined): v is DeviceValue => v instanceof DeviceValue;

/** Lets a shape-only op contract take a device value where its signature says Tensor. */
export const asShapeTensor = (v: RunValue | undefined): Tensor | undefined => v as Tensor | undefined;

/**
 * Stands in for a deferred value in a kernel's `lazyInputs` slot while `accepts` decides: present (so the
 * contract sees the input given) but empty — a kernel that accepts never reads it.
 */
export const LAZY_INPUT: Tensor = new HostTensor("float32", new Float32Array(0), [0]);
