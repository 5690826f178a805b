/**
 * The native addon (native/src, C++) is host code two backends use: the CPU backend's kernels
 * (src/backends/cpu/native wraps them) and the WebGPU backend's parallel copy of read-back outputs.
 *
 * Finds the native addon: the prebuilt per-platform package (`@mhafuse/native-<platform>-<arch>`, named in
 * optionalDependencies the way esbuild and sharp ship theirs), else the one `npm run build:native` (or the
 * install step) compiled into native/build, else nothing. When nothing loads, or MHAFUSE_NO_NATIVE=1 asks for
 * the fallback, one line on stderr says the WebAssembly kernels will run instead, once per process.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NativeBinding } from "./binding.js";

const require = createRequire(import.meta.url);
/** The package root: this file sits at src/native (or dist/native). */
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export const PREBUILT_PACKAGE = `@mhafuse/native-${process.platform}-${process.arch}`;
export const LOCAL_BUILD = join(packageRoot, "native", "build", "mhafuse_native.node");

export interface NativeLoad {
  binding: NativeBinding | undefined;
  /** Where the addon came from, or why there is none. */
  source: string;
}

/** Where findNative looks; the defaults are this package's own places. */
export interface NativeSearch {
  /**
   * The directory the prebuilt package is resolved from, as `require` from a file in it would (its
   * node_modules, then its parents'): default this module's own location.
   */
  resolveFrom?: string;
  /** The locally compiled addon to try next (default LOCAL_BUILD); null: none. */
  localBuild?: string | null;
}

/**
 * The addon by the loader's order: the prebuilt per-platform package, then the local build. No caching, no
 * notice, no MHAFUSE_NO_NATIVE: loadNative adds those. `search` points it elsewhere (the tests install a packed
 * package into a temporary node_modules and load it from there).
 */
export function findNative(search: NativeSearch = {}): NativeLoad {
  const requireFrom = search.resolveFrom ? createRequire(join(search.resolveFrom, "index.js")) : require;
  const localBuild = search.localBuild === undefined ? LOCAL_BUILD : search.localBuild;
  const errors: string[] = [];
  try {
    return { binding: requireFrom(PREBUILT_PACKAGE) as NativeBinding, source: PREBUILT_PACKAGE };
  } catch (e) {
    // Not installed is the normal case (no prebuilt for this platform, or a clone of this repo); a package that
    // is there but does not load is worth saying.
    const code = (e as { code?: string }).code;
    if (code !== "MODULE_NOT_FOUND" || !(e as Error).message.includes(`'${PREBUILT_PACKAGE}'`))
      errors.push(`${PREBUILT_PACKAGE}: ${(e as Error).message}`);
  }
  if (localBuild !== null && existsSync(localBuild)) {
    try {
      return { binding: require(localBuild) as NativeBinding, source: localBuild };
    } catch (e) {
      errors.push(`${localBuild}: ${(e as Error).message}`);
    }
  }
  return {
    binding: undefined,
    source: errors.length ? errors.join("; ") : "not built (npm run build:native builds it)",
  };
}

let loaded: NativeLoad | undefined;

function tryLoad(): NativeLoad {
  if (process.env.MHAFUSE_NO_NATIVE === "1")
    return { binding: undefined, source: "disabled by MHAFUSE_NO_NATIVE=1" };
  return findNative();
}

let noticed = false;

/** The addon, loading it on first use; undefined when it is unavailable (after a one-line notice on stderr). */
export function loadNative(): NativeLoad {
  loaded ??= tryLoad();
  if (!loaded.binding && !noticed) {
    noticed = true;
    process.stderr.write(
      `mhafuse: native CPU kernels unavailable (${loaded.source.split("\n")[0]}); using the WebAssembly kernels\n`,
    );
  }
  return loaded;
}

/**
 * The addon if it loads, without the fallback notice: for host-side helpers outside the CPU backend (the
 * WebGPU readback's parallel copy), whose fallback is plain JS and costs nothing worth telling.
 */
export function loadNativeQuietly(): NativeBinding | undefined {
  loaded ??= tryLoad();
  return loaded.binding;
}
