/**
 * Shared by the test/webgpu-*.test.ts files: one WebGPU context per test file (lavapipe in CI), or a printed
 * reason to skip when the machine has no adapter (or the optional `webgpu` package is missing).
 */
import assert from "node:assert/strict";
import { WebGpuBackend, type WebGpuBackendOptions } from "../src/backends/webgpu/backend.js";
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { createWebGpuDevice, type WebGpuFeatures } from "../src/backends/webgpu/device.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import { detectF16 } from "../src/backends/webgpu/precision.js";
import { BackendUnavailableError } from "../src/errors.js";
import { Tensor } from "../src/ir/tensor.js";

let ctxPromise: Promise<WebGpuContext | string> | undefined;

/**
 * Why a WebGPU test may skip: the message of a BackendUnavailableError (no adapter, or no `webgpu` package),
 * else undefined (any other error is the test's to rethrow). CI sets MHAFUSE_REQUIRE_WEBGPU=1 (.ci/run installs
 * lavapipe), and there a missing adapter fails the test instead of letting the WebGPU suite pass by skipping.
 */
export function webgpuUnavailable(e: unknown): string | undefined {
  if (!(e instanceof BackendUnavailableError)) return undefined;
  if (process.env.MHAFUSE_REQUIRE_WEBGPU === "1")
    throw new Error(`MHAFUSE_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${e.message}`, { cause: e });
  return e.message;
}

/** The context, or the reason WebGPU is unavailable here (see webgpuUnavailable). */
export function gpuContext(): Promise<WebGpuContext | string> {
  ctxPromise ??= WebGpuContext.create().catch((e: unknown) => {
    const reason = webgpuUnavailable(e);
    if (reason === undefined) throw e;
    console.log(`# skipping WebGPU tests: ${reason}`);
    return reason;
  });
  return ctxPromise;
}

export async function disposeGpuContext(): Promise<void> {
  const c = await ctxPromise;
  if (c instanceof WebGpuContext) c.dispose();
  ctxPromise = undefined;
}

/** Deterministic values in [-1, 1) (xorshift), so failures reproduce. */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

export function upload(
  ctx: WebGpuContext,
  data: Float32Array | Int32Array,
  dims: readonly number[],
): GpuTensor {
  return { buffer: ctx.pool.upload(data), dims };
}

export function empty(ctx: WebGpuContext, dims: readonly number[]): GpuTensor {
  return {
    buffer: ctx.pool.acquire(
      Math.max(
        1,
        dims.reduce((a, b) => a * b, 1),
      ) * 4,
    ),
    dims,
  };
}

export async function read(ctx: WebGpuContext, t: GpuTensor): Promise<Float32Array> {
  return ctx.pool.readFloat32(
    t.buffer,
    t.dims.reduce((a, b) => a * b, 1),
  );
}

/**
 * |got - want| <= tol everywhere; NaN must match NaN (where the reference is NaN the kernel must be NaN too),
 * and ±Inf must match exactly.
 */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-4, what = ""): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Number.isNaN(w) || Number.isNaN(g)) {
      assert.ok(Number.isNaN(w) && Number.isNaN(g), `${what}: index ${i}: got ${g}, want ${w}`);
      continue;
    }
    if (!Number.isFinite(w)) {
      assert.equal(g, w, `${what}: index ${i}`);
      continue;
    }
    const d = Math.abs(g - w);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${what}: max |diff| ${worst} at ${at} (got ${got[at]}, want ${want[at]}) > ${tol}`,
  );
}

/** erf in float64: its Maclaurin series below 3, the asymptotic erfc expansion above (|error| < 1e-9). */
export function erf(x: number): number {
  const t = Math.abs(x);
  if (Number.isNaN(t)) return t;
  if (t < 3) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 200; n++) {
      term *= (-t * t) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let series = 1;
  let term = 1;
  for (let n = 1; n < 6; n++) {
    term *= -(2 * n - 1) / (2 * t * t);
    series += term;
  }
  return Math.sign(x) * (1 - (Math.exp(-t * t) / (t * Math.sqrt(Math.PI))) * series);
}

export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));

/**
 * Feeds of one step of the llama_past fixture (2 layers, 2 KV heads, head size 16): `ids` new tokens, a mask of
 * `total` ones, and the past K/V — the previous step's presents, or empty caches on the first step.
 */
export function llamaPastFeeds(
  ids: number[],
  total: number,
  past: Record<string, Tensor> | undefined,
): Record<string, Tensor> {
  const [layers, kvHeads, head] = [2, 2, 16];
  const f: Record<string, Tensor> = {
    input_ids: new Tensor("int64", ids, [1, ids.length]),
    attention_mask: new Tensor("int64", new Array(total).fill(1), [1, total]),
  };
  for (let l = 0; l < layers; l++)
    for (const kv of ["key", "value"])
      f[`past_${kv}_${l}`] =
        past?.[`present_${kv}_${l}`] ?? new Tensor("float32", new Float32Array(0), [1, kvHeads, 0, head]);
  return f;
}

/**
 * A webgpu backend on this machine's device with its adapter made to report no shader-f16 before detection (what
 * such a device reports), or why WebGPU is unavailable here. The caller disposes it.
 */
export async function backendWithoutShaderF16(
  options: WebGpuBackendOptions,
): Promise<WebGpuBackend | string> {
  let gpu: Awaited<ReturnType<typeof createWebGpuDevice>>;
  try {
    gpu = await createWebGpuDevice();
  } catch (e) {
    const reason = webgpuUnavailable(e);
    if (reason !== undefined) return reason;
    throw e;
  }
  (gpu.features as WebGpuFeatures).shaderF16 = false;
  const ctx = new WebGpuContext(gpu);
  ctx.f16 = await detectF16(gpu);
  class Stubbed extends WebGpuBackend {
    override context() {
      return Promise.resolve(ctx);
    }
  }
  return new Stubbed(options);
}

/** console.warn lines printed while `f` runs (the precision notices go there, i.e. to stderr). */
export async function warnings<T>(f: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const orig = console.warn;
  console.warn = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    return { value: await f(), lines };
  } finally {
    console.warn = orig;
  }
}
