/**
 * A backend's kernels, looked up per node: `find(node, opset, dtypes)` returns the kernel that covers the
 * op, its opset version and its input element types, or undefined — then the engine runs the op's
 * reference (src/ops). Kernels declare what the memory planner must know about them, as onnxruntime's
 * WebGPU EP does: outputs that alias an input (`Alias(0, 0)`: Reshape, Squeeze… hand their input's buffer
 * on, no copy) and inputs read on the host (`InputMemoryType(OrtMemTypeCPU, i)`: shape inputs, which a
 * device backend must not upload).
 */
import type { DType } from "../ir/dtype.js";
import { type Node, normalizeDomain } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import type { OpCompute } from "../ops/compute.js";
import type { OpContext } from "../ops/registry.js";

/** What a kernel sees: the node, its opset, and the backend's primitives and output allocator. */
export interface KernelContext<C extends OpCompute = OpCompute> extends OpContext {
  compute: C;
  /** The kernel may return a Promise (compute off the calling thread); false in synchronous runs. */
  allowAsync: boolean;
}

/** What the registry matches a node against (a backend's kernel type extends it with its own `run`). */
export interface KernelKey {
  opType: string;
  /** "" for ai.onnx (default). */
  domain?: string;
  /** Opset versions covered, inclusive (default: all). */
  since?: number;
  until?: number;
  /** Element types of the first present input the kernel covers (default: all). */
  types?: readonly DType[];
  /** [input, output]: the output shares the input's buffer (same data, new dims). */
  aliases?: readonly (readonly [input: number, output: number])[];
  /** Inputs the kernel reads on the host (shapes, axes, sizes), never from device memory. */
  hostInputs?: readonly number[];
}

export interface KernelDef<C extends OpCompute = OpCompute> extends KernelKey {
  run(ctx: KernelContext<C>, inputs: (Tensor | undefined)[]): Tensor[] | Promise<Tensor[]>;
}

const keyOf = (domain: string, opType: string) => `${normalizeDomain(domain)}::${opType}`;

/**
 * Kernels keyed by op. `D` is the backend's kernel type: CPU kernels take host tensors (KernelDef), a device
 * backend's take its own values (the webgpu backend's GpuKernelDef), matched by the same rules.
 */
export class KernelRegistry<C extends OpCompute = OpCompute, D extends KernelKey = KernelDef<C>> {
  private readonly byOp = new Map<string, D[]>();

  register(...defs: readonly D[]): this {
    for (const d of defs) {
      const k = keyOf(d.domain ?? "", d.opType);
      this.byOp.set(k, [...(this.byOp.get(k) ?? []), d]);
    }
    return this;
  }

  /** The first registered kernel covering the node's op, opset and first input's dtype; undefined if none. */
  find(
    node: Pick<Node, "domain" | "opType">,
    opset: number,
    dtypes: readonly (DType | undefined)[],
  ): D | undefined {
    // Domain "*": a kernel for the op type in every domain (TensorRT's plugin nodes, as the op registry has them).
    const candidates =
      this.byOp.get(keyOf(node.domain, node.opType)) ?? this.byOp.get(keyOf("*", node.opType));
    if (!candidates) return undefined;
    const first = dtypes.find((d) => d !== undefined);
    return candidates.find(
      (k) =>
        (k.since === undefined || opset >= k.since) &&
        (k.until === undefined || opset <= k.until) &&
        (!k.types || (first !== undefined && k.types.includes(first))),
    );
  }

  /** "domain::Op" of every op with at least one kernel, sorted. */
  ops(): string[] {
    return [...this.byOp.keys()].sort();
  }
}
