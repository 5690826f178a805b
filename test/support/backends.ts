/**
 * Every registered backend the op suite runs on, besides the reference. A new backend (WebGPU) is added
 * here and starts with the whole op suite to pass.
 */
import type { Backend } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { WebGpuBackend } from "../../src/backends/webgpu/backend.js";

export interface BackendUnderTest {
  name: string;
  create(): Backend;
  /** May be unavailable on this machine (BackendUnavailableError at prepare): skipped, not failed. */
  optional?: boolean;
}

export const BACKENDS: readonly BackendUnderTest[] = [
  // Native kernels where the addon loads (else this is the WebAssembly path again), and the fallback kernels.
  { name: "cpu", create: () => new CpuBackend({ threads: 2 }) },
  { name: "cpu-wasm", create: () => new CpuBackend({ threads: 2, cpuKernels: "wasm" }) },
  // Where WebGPU is unavailable (no `webgpu` package, no adapter) the op suite reports it and skips it.
  { name: "webgpu", create: () => new WebGpuBackend(), optional: true },
];
