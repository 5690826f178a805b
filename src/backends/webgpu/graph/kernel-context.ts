/**
 * The webgpu backend's kernel type. A kernel sees run values (device buffers or host tensors), records its
 * dispatches on the run's recorder, and returns run values; `accepts` says, before anything is recorded,
 * whether it covers this node (attributes, dtypes, shapes) — when it does not, the op's CPU reference runs
 * instead, with explicit transfers, and the run reports the node as fallen back with the reason.
 */
import type { Node } from "../../../ir/graph.js";
import type { Tensor } from "../../../ir/tensor.js";
import type { KernelKey } from "../../kernel-registry.js";
import type { WebGpuContext } from "../context.js";
import type { CommandRecorder } from "../recorder.js";
import type { DeviceDType, DeviceValue, RunValue } from "./values.js";

export interface GpuKernelContext {
  node: Node;
  opset: number;
  gpu: WebGpuContext;
  /** The run's recorder (one per run unless a fallback forced a read-back in between). */
  readonly rec: CommandRecorder;
  /** The value on the device: device values as they are; host float32/int32 tensors uploaded (weights: once). */
  device(v: RunValue): DeviceValue;
  /** A pooled buffer for an output (or a scratch value: hand it to `scratch` when done). */
  alloc(dims: readonly number[], type?: DeviceDType): DeviceValue;
  /** Returns a scratch value to the pool (safe right after recording: the queue keeps order). */
  scratch(v: DeviceValue): void;
  /** A GEMM's constant B as [K, N], uploaded at prepare (transposed on the host once when `transposed`). */
  weight(t: Tensor, transposed: boolean): DeviceValue | undefined;
  /** Int32 data for the device (lengths, gather indices), in a buffer freed when the run ends. */
  uploadInt32(data: Int32Array): GPUBuffer;
}

export interface GpuKernelDef extends KernelKey {
  /**
   * Inputs `run` never reads when `accepts` takes the node (an optional fallback input): the graph may defer
   * computing them, and `accepts` then sees LAZY_INPUT (present, no data) in their slot.
   */
  lazyInputs?: readonly number[];
  /** Why this kernel does not cover the node on this device (undefined: it does). */
  accepts?(
    node: Node,
    opset: number,
    inputs: readonly (RunValue | undefined)[],
    gpu: WebGpuContext,
  ): string | undefined;
  run(k: GpuKernelContext, inputs: (RunValue | undefined)[]): RunValue[];
}
