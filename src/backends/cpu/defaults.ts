/**
 * The CPU backend's defaults, the only place its environment variables are read. Session options
 * (intraOpNumThreads, gemmKernel, attentionKernel) override them; library calls without options use them.
 *   MHAFUSE_THREADS=n              threads for parallel kernels (default: every core)
 *   MHAFUSE_NO_WASM=1              plain-JS GEMM and attention kernels instead of WebAssembly SIMD
 *   MHAFUSE_ATTENTION_KERNEL=js    plain-JS attention kernel only (the GEMM stays on wasm)
 *   MHAFUSE_CPU_KERNELS=native|wasm|js   the kernel family (default native; MHAFUSE_NO_WASM implies js)
 *   MHAFUSE_NO_NATIVE=1            read by src/native/load.ts: the addon is never loaded, "native" falls back
 */
import { availableParallelism } from "node:os";

/** "auto": the WebAssembly SIMD kernel where this Node has it; "js": the plain-JS kernel. */
export type KernelChoice = "auto" | "js";

/**
 * The CPU kernel family: "native" (the C++ addon, on its own thread pool; the WebAssembly kernels when the
 * addon does not load), "wasm" (WebAssembly SIMD on worker threads) or "js" (plain JS, the slow oracle-like path).
 */
export type CpuKernels = "native" | "wasm" | "js";
export const CPU_KERNELS: readonly CpuKernels[] = ["native", "wasm", "js"];

export function defaultCpuKernels(): CpuKernels {
  if (process.env.MHAFUSE_NO_WASM) return "js";
  const fromEnv = process.env.MHAFUSE_CPU_KERNELS;
  return CPU_KERNELS.includes(fromEnv as CpuKernels) ? (fromEnv as CpuKernels) : "native";
}

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
