/**
 * The native CPU kernels (native/, C++ with AVX-512 / AVX2 / portable builds picked at run time) as a typed
 * API. `nativeKernels()` is undefined when the addon is not available (not built, no compiler at install,
 * MHAFUSE_NO_NATIVE=1): callers then use the WebAssembly kernels, and a one-line notice on stderr says so.
 */

import { loadNative } from "../../../native/load.js";
import { NativeKernels } from "./kernels.js";

export { LOCAL_BUILD, PREBUILT_PACKAGE } from "../../../native/load.js";
export type { NativeErrorCode } from "./errors.js";
export { NativeKernelError } from "./errors.js";
export type { Activation, AttentionOptions, GemmOptions, Layout, PackedQkvOptions } from "./kernels.js";
export { NativeKernels, PackedWeights } from "./kernels.js";

let kernels: NativeKernels | null | undefined;

/** The native kernels, or undefined when the addon cannot be used (the caller falls back to WebAssembly). */
export function nativeKernels(): NativeKernels | undefined {
  if (kernels === undefined) {
    const { binding } = loadNative();
    kernels = binding ? new NativeKernels(binding) : null;
  }
  return kernels ?? undefined;
}

/** Where the addon was loaded from, or why it was not. */
export function nativeSource(): string {
  return loadNative().source;
}
