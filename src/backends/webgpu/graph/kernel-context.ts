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
import type { F16Kernel } from "../precision.js";
import type { CommandRecorder } from "../recorder.js";
import type { DeviceDType, DeviceValue, RunValue } from "./values.js";

/** A float value's storage on the device. */
export type Storage = "f32" | "f16";

export interface GpuKernelContext {
  node: Node;
  opset: number;
  gpu: WebGpuContext;
  /**
   * fp16 mode (the session's precision, resolved on this device): which f16 GEMM kernels run; undefined in
   * fp32 mode. GEMM and attention then take f16 operands and write f16; the storage-following kernels
   * (norms, softmax, elementwise, maps) compute in f32 and store what `outF16` says.
   */
  readonly f16: F16Kernel | undefined;
  /** fp16 mode: the attention kernel (SIMT unless the tensor-core one is opted into). */
  readonly attentionKernel: F16Kernel | undefined;
  /** Whether output `i` is stored as f16: in fp16 mode every float output except values kept f32. */
  outF16(i: number): boolean;
  /** The run's recorder (one per run unless a fallback forced a read-back in between). */
  readonly rec: CommandRecorder;
  /**
   * The value on the device: device values as they are; host float32/int32 tensors uploaded (weights: once).
   * With `storage`, a float value in that storage (converted by a cast dispatch where it differs).
   */
  device(v: RunValue, storage?: Storage): DeviceValue;
  /** A pooled buffer for an output (or a scratch value: hand it to `scratch` when done); `f16` storage. */
  alloc(dims: readonly number[], type?: DeviceDType, f16?: boolean): DeviceValue;
  /** Returns a scratch value to the pool (safe right after recording: the queue keeps order). */
  scratch(v: DeviceValue): void;
  /**
   * A GEMM's constant B as [K, N], uploaded at prepare (transposed on the host once when `transposed`); in
   * fp16 mode the f16 copy made at prepare.
   */
  weight(t: Tensor, transposed: boolean): DeviceValue | undefined;
  /**
   * Int32 data for the device (lengths, gather indices), in a buffer freed when the run ends. A replay keeps
   * these bytes as recorded: they must follow from dims and deciding host inputs only — data taken from a
   * `hostData` input goes through `uploadHostData`.
   */
  uploadInt32(data: Int32Array): GPUBuffer;
  /** The kernel's `hostData[slot]` of these inputs, uploaded (a replay recomputes and rewrites the bytes). */
  uploadHostData(slot: number, inputs: readonly (RunValue | undefined)[]): GPUBuffer;
}

/** The bytes a host input becomes on the device (see GpuKernelDef.hostData); throws the op's own errors. */
export type HostData = (node: Node, inputs: readonly (RunValue | undefined)[]) => Int32Array;

export interface GpuKernelDef extends KernelKey {
  /** fp16 mode: float32 initializer inputs converted to f16 at prepare (GEMM operands, embedding tables). */
  f16Weights?: readonly number[];
  /**
   * fp16 mode: the kernel reads and writes f32 storage only (kernels written for f32 buffers). Its context then
   * hands out every float input as f32 (`device` casts f16-stored values, `weight` gives only f32 copies) and
   * `outF16` is false, so an f16 value is never read as f32 words; storage-following readers take its f32
   * outputs as they are.
   */
  f32Storage?: boolean;
  /**
   * Inputs `run` never reads when `accepts` takes the node (an optional fallback input): the graph may defer
   * computing them, and `accepts` then sees LAZY_INPUT (present, no data) in their slot.
   */
  lazyInputs?: readonly number[];
  /**
   * Host inputs whose data the kernel only turns into device bytes — embedding indices, int32 lengths, rotary
   * cache rows — by this function, uploaded with `uploadHostData`: nothing else the kernel records depends
   * on their values, except what `accepts` checks. A replayed run (./replay-plan.ts) re-runs `accepts`,
   * recomputes these bytes from its own inputs and rewrites them, where any other host input read by the
   * kernel keys the replay plan by its data.
   *
   * A host tensor in a slot outside `hostInputs` and `hostData` is either uploaded as it is with `device()`
   * (a replay rewrites its bytes) or read on the host (it then keys the plan) — not both.
   */
  hostData?: Readonly<Record<number, HostData>>;
  /**
   * Host data shared between the nodes of one run: `hostDataShare[slot]` names what `hostData[slot]`'s bytes
   * depend on (value names, dims); nodes with equal names get one upload — the packed-attention ops of an
   * encoder all read one mask — and a replay rewrites one buffer. The name must cover every such dependency.
   */
  hostDataShare?: Readonly<Record<number, (node: Node, inputs: readonly (RunValue | undefined)[]) => string>>;
  /** Why this kernel does not cover the node on this device (undefined: it does). */
  accepts?(
    node: Node,
    opset: number,
    inputs: readonly (RunValue | undefined)[],
    gpu: WebGpuContext,
  ): string | undefined;
  run(k: GpuKernelContext, inputs: (RunValue | undefined)[]): RunValue[];
}

/** The storage a kernel's float operands are read in: f16 in fp16 mode, else f32. */
export const storageOf = (k: Pick<GpuKernelContext, "f16">): Storage => (k.f16 ? "f16" : "f32");

/** A GEMM's precision arguments in this context: fp16 mode's kernel choice, or fp32. */
export const gemmPrecisionOf = (k: Pick<GpuKernelContext, "f16">) =>
  k.f16 ? ({ precision: "fp16", f16Kernel: k.f16 } as const) : ({ precision: "fp32" } as const);
