import { MhafuseError } from "../../../errors.js";

/** Stable codes of the errors the native kernels raise. */
export type NativeErrorCode =
  /** Sizes, offsets or strides that do not fit the arrays, or an argument of the wrong type. */
  | "ERR_MHAFUSE_NATIVE_ARG"
  /** A native kernel was called while the addon is not loaded (check `nativeKernels()` first). */
  | "ERR_MHAFUSE_NATIVE_UNAVAILABLE";

/** An error from the native CPU kernels; `code` is stable, the message is for people. */
export class NativeKernelError extends MhafuseError {
  override name = "NativeKernelError";
  override readonly code: NativeErrorCode;
  constructor(code: NativeErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Runs a call into the addon, turning its coded errors into NativeKernelError. */
export function nativeCall<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === "ERR_MHAFUSE_NATIVE_ARG") throw new NativeKernelError(code, (e as Error).message);
    throw e;
  }
}
