/**
 * Every registered backend the op suite runs on, besides the reference. A new backend (WebGPU) is added
 * here and starts with the whole op suite to pass.
 */
import type { Backend } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";

export interface BackendUnderTest {
  name: string;
  create(): Backend;
}

export const BACKENDS: readonly BackendUnderTest[] = [
  { name: "cpu", create: () => new CpuBackend({ threads: 2 }) },
];
