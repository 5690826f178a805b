/**
 * The CPU backend's kernel registry. Three kinds of entry:
 *  - GEMM kernels (MatMul, Gemm): the contract reduces the node to GEMM problems (src/ops/matmul.ts), the
 *    backend runs them on its pool — asynchronously, off the calling thread, when the problem is large.
 *  - contract kernels: ops whose contract delegates its arithmetic to `ctx.compute` (Conv, Einsum, every
 *    attention op) or writes its float32 outputs into `ctx.compute.allocFloat32` buffers (elementwise,
 *    normalisation): the same code as the reference, run with the CPU primitives and the buffer pool.
 *  - alias kernels (Reshape, Squeeze, Unsqueeze, Flatten, Identity): the output is the input's buffer with
 *    new dims, and shape/axes inputs are read on the host.
 * An op with no entry runs its reference.
 */
import type { DType } from "../../ir/dtype.js";
import type { Tensor } from "../../ir/tensor.js";
import { getOp } from "../../ops/index.js";
import { type GemmCall, gemmGemmCall, matmulGemmCall } from "../../ops/matmul.js";
import type { OpContext } from "../../ops/registry.js";
import { type KernelContext, type KernelDef, KernelRegistry } from "../kernel-registry.js";

const FLOAT_TYPES: readonly DType[] = ["float32", "float16"];

/** A kernel that runs the op's contract with the backend's primitives (ctx.compute). */
function contract(opType: string, domain = "", extra: Partial<KernelDef> = {}): KernelDef {
  const def = getOp({ opType, domain, name: opType });
  return { opType, domain, ...extra, run: (ctx, inputs) => def.run(ctx, inputs) };
}

/** A GEMM-shaped op: its float32/float16 call on the backend's GEMM (other dtypes never reach it). */
function gemmKernel(
  opType: string,
  toCall: (ctx: OpContext, inputs: (Tensor | undefined)[]) => GemmCall | undefined,
): KernelDef {
  return {
    opType,
    types: FLOAT_TYPES,
    run(ctx: KernelContext, inputs) {
      const call = toCall(ctx, inputs)!;
      ctx.compute.gemm(call.problems);
      return [call.output()];
    },
  };
}

/** Output 0 is input 0's buffer with new dims; `hostInputs` hold shapes or axes. */
function aliasKernel(opType: string, hostInputs: readonly number[], since?: number): KernelDef {
  return contract(opType, "", { aliases: [[0, 0]], hostInputs, since });
}

export const cpuKernels = new KernelRegistry().register(
  gemmKernel("MatMul", matmulGemmCall),
  gemmKernel("Gemm", gemmGemmCall),
  contract("Conv"),
  contract("Einsum"),
  contract("Attention", "mhafuse"),
  contract("Attention", "com.microsoft"),
  contract("MultiHeadAttention", "com.microsoft"),
  contract("Attention", "", { since: 23 }),
  // QKVToContext's contract file calls runQkvAttention (src/attention/qkv-to-context.ts), which runs on this
  // backend's attention core already; registered so the op runs as a CPU kernel with pooled buffers later.
  contract("QKVToContext", "mhafuse"),
  aliasKernel("Reshape", [1]),
  aliasKernel("Squeeze", [1]),
  aliasKernel("Unsqueeze", [1]),
  aliasKernel("Flatten", []),
  aliasKernel("Identity", []),
);
