/**
 * The CPU backend's defaults, the only place its environment variables are read. Session options
 * (intraOpNumThreads, gemmKernel, attentionKernel) override them; library calls without options use them.
 *   MHAFUSE_THREADS=n              threads for parallel kernels (default: every core)
 *   MHAFUSE_NO_WASM=1              plain-JS GEMM and attention kernels instead of WebAssembly SIMD
 *   MHAFUSE_ATTENTION_KERNEL=js    plain-JS attention kernel only (the GEMM stays on wasm)
 */
import { availableParallelism } from "node:os";

/** "auto": the WebAssembly SIMD kernel where this Node has it; "js": the plain-JS kernel. */
export type KernelChoice = "auto" | "js";

export function defaultThreads(): number {
  const fromEnv = Number(process.env.MHAFUSE_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return Math.max(1, availableParallelism());
}

export function defaultGemmKernel(): KernelChoice {
  return process.env.MHAFUSE_NO_WASM ? "js" : "auto";
}

export function defaultAttentionKernel(): KernelChoice {
  return process.env.MHAFUSE_NO_WASM || process.env.MHAFUSE_ATTENTION_KERNEL === "js" ? "js" : "auto";
}
