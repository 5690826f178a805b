import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  LOCAL_BUILD,
  type NativeKernels,
  nativeKernels,
  nativeSource,
} from "../src/backends/cpu/native/index.js";

// Shared by the native kernel tests: the addon (or why the tests skip), every kernel build × thread count this
// machine runs, and comparisons with the references' NaN/±Inf behaviour.

/** MHAFUSE_NO_NATIVE=1: the fallback run (npm run test:fallback), where the native tests skip. */
const disabled = process.env.MHAFUSE_NO_NATIVE === "1";

export const native: NativeKernels | undefined = disabled ? undefined : nativeKernels();

// CI sets MHAFUSE_REQUIRE_NATIVE=1 (.ci/run): there a missing addon fails every file that imports this one
// instead of skipping its tests, so a failed build cannot pass green. Local runs without it still skip.
if (!native && !disabled && process.env.MHAFUSE_REQUIRE_NATIVE === "1")
  throw new Error(`MHAFUSE_REQUIRE_NATIVE=1 but the native addon did not load: ${nativeSource()}`);

/** Skip reason (printed by node:test) when the addon is not built; false when the tests run. */
export const skipNative: string | false = native
  ? false
  : disabled
    ? "native kernels disabled by MHAFUSE_NO_NATIVE=1"
    : `native addon not built (${existsSync(LOCAL_BUILD) ? "it failed to load" : "run npm run build:native"})`;

/** Runs `body` once per kernel build (avx512, avx2, portable: those this CPU has) × 1 and 2 threads. */
export function forEachConfig(body: (nk: NativeKernels, label: string) => void): void {
  const nk = native!;
  const isas = nk.isas;
  try {
    for (const isa of isas)
      for (const threads of [1, 2]) {
        assert.ok(nk.selectIsa(isa));
        nk.setThreads(threads);
        body(nk, `${isa}/${threads}t`);
      }
  } finally {
    nk.selectIsa(isas[0]!);
    nk.setThreads(2);
  }
}

/** Deterministic pseudo-random float32 values in [-1, 1). */
export function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/**
 * got[i] against want[i] (float64) within tol[i] (or tol): a NaN reference needs NaN, an infinite one the same
 * infinity, a finite one a finite value within the tolerance.
 */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number | ArrayLike<number>,
  what: string,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const t = typeof tol === "number" ? tol : tol[i]!;
    if (Number.isNaN(w)) assert.ok(Number.isNaN(g), `${what}[${i}]: got ${g}, expected NaN`);
    else if (!Number.isFinite(w)) assert.equal(g, w, `${what}[${i}]: got ${g}, expected ${w}`);
    else assert.ok(Math.abs(g - w) <= t, `${what}[${i}]: got ${g}, expected ${w} (tolerance ${t})`);
  }
}
