/**
 * The CPU backend's kernel registry. Four kinds of entry:
 *  - GEMM kernels (MatMul, Gemm): the contract reduces the node to GEMM problems (src/ops/matmul.ts), the
 *    backend runs them on its pool — off the calling thread, awaited, when the problem is large.
 *  - contract kernels (Conv, Einsum): the op's contract run with the CPU primitives in `ctx.compute`.
 *  - attention kernels (every attention op): the contract builds the problems, which run off the calling
 *    thread when large.
 *  - map kernels (GELU) chunked over the pool, and alias kernels (Reshape, Squeeze, Unsqueeze, Flatten,
 *    Identity): the output is the input's buffer with new dims, shape/axes inputs are read on the host.
 * An op with no entry runs its reference arithmetic with the backend's allocator (`referenceWith`), so the
 * float32 elementwise, normalisation and transpose outputs still land in pooled buffers.
 */
import type { DType } from "../../ir/dtype.js";
import type { Node } from "../../ir/graph.js";
import { Tensor } from "../../ir/tensor.js";
import type { GemmProblem } from "../../ops/gemm-problem.js";
import { getOp } from "../../ops/index.js";
import { fusedGemmCall, type GemmCall, gemmGemmCall, matmulGemmCall } from "../../ops/matmul.js";
import type { OpContext } from "../../ops/registry.js";
import { isOrderPreserving, transposePerm } from "../../ops/transpose.js";
import { TRT_PLUGIN_OP } from "../../ops/trt-qkv-plugin.js";
import { type KernelContext, type KernelDef, KernelRegistry } from "../kernel-registry.js";
import { attentionFlops, captureAttentionProblems, PARALLEL_MIN_FLOPS } from "./attention-core.js";
import type { CpuCompute } from "./compute.js";
import type { MapName } from "./map-parallel.js";
import * as nativeOps from "./native-ops.js";

const FLOAT_TYPES: readonly DType[] = ["float32", "float16"];

/**
 * GEMMs from this many flops on (about a millisecond of work and up) run on the pool's workers while the
 * calling thread awaits them; below it the hand-off would cost more than the thread it frees.
 */
export const ASYNC_GEMM_MIN_FLOPS = 5e7;

function gemmFlops(problems: readonly GemmProblem[]): number {
  return problems.reduce((s, p) => s + 2 * p.M * p.N * p.K, 0);
}

/** A kernel that runs the op's contract with the backend's primitives (ctx.compute). */
function contract(
  opType: string,
  domain = "",
  extra: Partial<KernelDef<CpuCompute>> = {},
): KernelDef<CpuCompute> {
  const def = getOp({ opType, domain, name: opType });
  return { opType, domain, ...extra, run: (ctx, inputs) => def.run(ctx, inputs) };
}

/** A GEMM kernel: also hands out the op's GEMM call itself, for a bound plan to resolve once (bound-plan.ts). */
export interface GemmKernelDef extends KernelDef<CpuCompute> {
  gemmCall(ctx: OpContext, inputs: (Tensor | undefined)[]): GemmCall | undefined;
}

export function isGemmKernel(k: KernelDef<CpuCompute> | undefined): k is GemmKernelDef {
  return k !== undefined && "gemmCall" in k;
}

/** Whether a GEMM call runs off the calling thread's turn (on the pool, sliced between event-loop turns). */
export function gemmGoesAsync(ctx: KernelContext<CpuCompute>, problems: readonly GemmProblem[]): boolean {
  return ctx.allowAsync && ctx.compute.threads > 1 && gemmFlops(problems) >= ASYNC_GEMM_MIN_FLOPS;
}

/** Runs a GEMM call's problems as the GEMM kernels do, and hands back its output. */
export function runGemmCall(ctx: KernelContext<CpuCompute>, call: GemmCall): Tensor[] | Promise<Tensor[]> {
  if (gemmGoesAsync(ctx, call.problems)) {
    return ctx.compute.gemmAsync(call.problems).then(() => [call.output()]);
  }
  ctx.compute.gemm(call.problems);
  return [call.output()];
}

/** A GEMM-shaped op: its float32/float16 call on the backend's GEMM (other dtypes never reach it). */
function gemmKernel(
  opType: string,
  toCall: (ctx: OpContext, inputs: (Tensor | undefined)[]) => GemmCall | undefined,
  domain = "",
): GemmKernelDef {
  return {
    opType,
    domain,
    types: FLOAT_TYPES,
    gemmCall: toCall,
    run: (ctx: KernelContext<CpuCompute>, inputs) => runGemmCall(ctx, toCall(ctx, inputs)!),
  };
}

/**
 * An attention op whose problems run off the calling thread when they are large: the op's run is captured
 * (its attention problems recorded, not run), then the problems run on the pool while the caller awaits.
 * Only for float32 outputs, which are the problems' output buffers themselves (a float16 output is
 * converted from them inside the op's run, so it must run synchronously).
 */
function attentionKernel(
  opType: string,
  domain: string,
  extra: Partial<KernelDef<CpuCompute>> = {},
): KernelDef<CpuCompute> {
  const sync = contract(opType, domain, extra);
  return {
    ...sync,
    run(ctx, inputs) {
      const { threads } = ctx.compute;
      if (ctx.compute.attentionOnNative && inputs[0]?.type === "float32") {
        // The native pool runs any size well: every problem goes there, none stays on the JS core.
        const { result, problems } = captureAttentionProblems(() => sync.run(ctx, inputs) as Tensor[]);
        ctx.compute.attentionSync(problems);
        return result;
      }
      if (!ctx.allowAsync || threads <= 1 || inputs[0]?.type !== "float32") return sync.run(ctx, inputs);
      const { result, problems } = captureAttentionProblems(() => sync.run(ctx, inputs) as Tensor[]);
      if (problems.reduce((s, a) => s + attentionFlops(a), 0) < PARALLEL_MIN_FLOPS) {
        ctx.compute.attentionSync(problems);
        return result;
      }
      return ctx.compute.attentionAsync(problems).then(() => result);
    },
  };
}

/** Elementwise maps from this many elements on run on the pool (~2 ms of GELU on one thread). */
export const ASYNC_MAP_MIN_ELEMENTS = 1 << 18;

/**
 * A one-input float32 activation that runs chunked on the pool when large (the calling thread awaits);
 * `mapOf` names the array function the op's attributes select, or undefined to run the op's own code.
 */
function mapKernel(
  opType: string,
  domain: string,
  mapOf: (node: Node) => MapName | undefined,
): KernelDef<CpuCompute> {
  const sync = contract(opType, domain, { types: ["float32"] });
  return {
    ...sync,
    run(ctx, inputs) {
      const [x, ...rest] = inputs;
      const map = mapOf(ctx.node);
      const offload =
        ctx.allowAsync &&
        ctx.compute.threads > 1 &&
        x?.type === "float32" &&
        x.size >= ASYNC_MAP_MIN_ELEMENTS;
      if (!offload || !map || rest.some((t) => t)) return sync.run(ctx, inputs);
      const y = ctx.compute.allocFloat32(x.size);
      return ctx.compute
        .mapAsync(map, x.data as Float32Array, y)
        .then(() => [new Tensor("float32", y, x.dims)]);
    },
  };
}

function onnxGeluMap(node: Node): MapName | undefined {
  const approximate = node.attrs.approximate;
  const value = approximate?.type === "string" ? approximate.value : "none";
  return value === "none" ? "gelu-erf" : value === "tanh" ? "gelu-tanh" : undefined;
}

/**
 * An op whose plain float32 case runs on the native kernels when the backend has them (native-ops.ts);
 * every other case, and every backend without the addon, runs the op's contract.
 */
function nativeKernel(
  opType: string,
  domain: string,
  fast: nativeOps.NativeOp,
  base: KernelDef<CpuCompute> = contract(opType, domain),
): KernelDef<CpuCompute> {
  return {
    ...base,
    run(ctx, inputs) {
      const native = ctx.compute.native;
      return (native && fast(native, ctx.compute, ctx.node, inputs, ctx.opset)) || base.run(ctx, inputs);
    },
  };
}

/** Output 0 is input 0's buffer with new dims; `hostInputs` hold shapes or axes. */
function aliasKernel(opType: string, hostInputs: readonly number[], since?: number): KernelDef<CpuCompute> {
  return contract(opType, "", { aliases: [[0, 0]], hostInputs, since });
}

/**
 * Transpose; one that moves only size-1 axes (the Transposes around the packed op at batch 1) keeps the
 * element order, so the result is the input's buffer under the new dims — the run's lease counts the shared
 * buffer like a Reshape's. Any other runs the op's contract.
 */
function transposeKernel(): KernelDef<CpuCompute> {
  const base = contract("Transpose");
  return {
    ...base,
    run(ctx, inputs) {
      const [x] = inputs;
      if (x) {
        const perm = transposePerm(ctx.node, x.rank);
        if (isOrderPreserving(x.dims, perm)) return [x.reshape(perm.map((p) => x.dims[p]!))];
      }
      return base.run(ctx, inputs);
    },
  };
}

export const cpuKernels = new KernelRegistry<CpuCompute>().register(
  gemmKernel("MatMul", matmulGemmCall),
  gemmKernel("Gemm", gemmGemmCall),
  gemmKernel("FusedGemm", fusedGemmCall, "mhafuse"),
  contract("Conv"),
  contract("Einsum"),
  attentionKernel("Attention", "mhafuse"),
  attentionKernel("Attention", "com.microsoft"),
  attentionKernel("MultiHeadAttention", "com.microsoft"),
  attentionKernel("Attention", "", { since: 23 }),
  // The packed-QKV op's run calls runQkvAttention (src/attention/qkv-to-context.ts), which ends in this
  // backend's runAttentionProblems: captured like the others. TensorRT's plugin node, in any domain.
  attentionKernel("QKVToContext", "mhafuse"),
  attentionKernel(TRT_PLUGIN_OP, "*"),
  nativeKernel(
    "Gelu",
    "com.microsoft",
    nativeOps.activation(() => "gelu", false),
    mapKernel("Gelu", "com.microsoft", () => "gelu-erf"),
  ),
  nativeKernel(
    "Gelu",
    "",
    nativeOps.activation(nativeOps.onnxGeluKind, false),
    mapKernel("Gelu", "", onnxGeluMap),
  ),
  nativeKernel(
    "FastGelu",
    "com.microsoft",
    nativeOps.activation(() => "fastGelu", true),
  ),
  nativeKernel(
    "BiasGelu",
    "com.microsoft",
    nativeOps.activation(() => "gelu", true),
  ),
  // ReLU and Sigmoid (float32; Sigmoid is half of SiLU in Llama/Qwen MLPs): the native maps, vectorised (a JS
  // loop ran ~2.6 ns/element on the dev box); other dtypes and the integer forms run the contract.
  nativeKernel(
    "Relu",
    "",
    nativeOps.activation(() => "relu", false),
  ),
  nativeKernel(
    "Sigmoid",
    "",
    nativeOps.activation(() => "sigmoid", false),
  ),
  nativeKernel("LayerNormalization", "", nativeOps.layerNorm),
  nativeKernel("SkipLayerNormalization", "com.microsoft", nativeOps.skipLayerNorm),
  nativeKernel("Softmax", "", nativeOps.softmax),
  nativeKernel("Add", "", nativeOps.add),
  aliasKernel("Reshape", [1]),
  aliasKernel("Squeeze", [1]),
  aliasKernel("Unsqueeze", [1]),
  aliasKernel("Flatten", []),
  aliasKernel("Identity", []),
  transposeKernel(),
);
