/** Pieces every WGSL kernel shares: tensor handles, binding declarations, 1-D grids, erf/GELU, shape checks. */
import { OpError } from "../../../errors.js";

/**
 * A contiguous, row-major tensor resident on the GPU: float32, or IEEE f16 for the fp16 kernels (the element
 * type is the kernel call's `precision`, not carried here). The buffer may be larger (pooled buckets).
 */
export interface GpuTensor {
  buffer: GPUBuffer;
  dims: readonly number[];
  /**
   * Stored as IEEE f16 (fp16 mode). Read by the kernels whose storage follows their tensors (elementwise,
   * maps, norms, softmax, transpose, gather); GEMM and attention take a `precision` argument instead.
   */
  f16?: boolean;
}

/** WGSL storage element of a tensor, and how a kernel widens its loads to f32 and narrows its stores. */
export const elemOf = (t: { f16?: boolean } | undefined): "f16" | "f32" => (t?.f16 ? "f16" : "f32");
export const widen = (t: { f16?: boolean } | undefined, x: string): string => (t?.f16 ? `f32(${x})` : x);
export const narrow = (t: { f16?: boolean } | undefined, x: string): string => (t?.f16 ? `f16(${x})` : x);
/** `enable f16;` when any tensor is stored as f16 (kernels keyed by `storageKey`). */
export const f16Enable = (...ts: ({ f16?: boolean } | undefined)[]): string =>
  ts.some((t) => t?.f16) ? "enable f16;\n" : "";
/** Pipeline-key suffix of the tensors' storage: "h" f16, "f" f32, "-" absent. */
export const storageKey = (...ts: ({ f16?: boolean } | undefined)[]): string =>
  ts.map((t) => (t ? (t.f16 ? "h" : "f") : "-")).join("");
/** Bytes per element of a tensor's storage (for expectCapacity). */
export const bytesOf = (t: { f16?: boolean }): number => (t.f16 ? 2 : 4);

export const sizeOf = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

export interface StorageDecl {
  name: string;
  /** WGSL element type of the runtime-sized array. */
  type?: "f32" | "vec4<f32>" | "i32" | "u32" | "f16" | "vec4<f16>" | "vec4<u32>";
  write?: boolean;
}

/**
 * Binding declarations in the order CommandRecorder.dispatch binds them: the uniform block `u` at 0 (when
 * `uniforms` is set), then each storage array.
 */
export function bindings(storage: readonly StorageDecl[], uniforms = true): string {
  let b = 0;
  const lines: string[] = [];
  if (uniforms) lines.push(`@group(0) @binding(${b++}) var<uniform> u: Params;`);
  for (const s of storage)
    lines.push(
      `@group(0) @binding(${b++}) var<storage, ${s.write ? "read_write" : "read"}> ${s.name}: array<${s.type ?? "f32"}>;`,
    );
  return `${lines.join("\n")}\n`;
}

/** Threads per workgroup of the 1-D (elementwise) kernels. */
export const LINEAR_WG = 256;

/**
 * Workgroups for `threads` threads in groups of LINEAR_WG, spread over x and y so that no dimension passes the
 * 65535 limit; the kernel recovers its index with LINEAR_INDEX and checks it against the element count.
 */
export function linearGrid(threads: number): [number, number] {
  const groups = Math.ceil(threads / LINEAR_WG);
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}
export const LINEAR_MAIN = `@compute @workgroup_size(${LINEAR_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * ${LINEAR_WG}u + lid;`;

/**
 * erf for f32 (WGSL has none): Abramowitz & Stegun 7.1.26, |error| < 1.5e-7, below float32 resolution of
 * GELU's output at the magnitudes that matter. Odd symmetry by sign; NaN stays NaN through the arithmetic.
 */
export const ERF_WGSL = `
fn erf_f32(x: f32) -> f32 {
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return select(y, -y, x < 0.0);
}
fn gelu_f32(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f32(x * 0.7071067811865476)); }
`;

/** Throws OpError naming the kernel and input unless `dims` equals `want`. */
export function expectDims(op: string, what: string, dims: readonly number[], want: readonly number[]): void {
  if (dims.length !== want.length || dims.some((d, i) => d !== want[i]))
    throw new OpError(op, `${what} must be [${want.join(", ")}], got [${dims.join(", ")}]`);
}

/**
 * Throws OpError unless the buffer holds `elements` values of `bytes` each (4: float32; 2: f16 tensors of the
 * fp16 kernels). Pooled buffers may hold more.
 */
export function expectCapacity(
  op: string,
  what: string,
  t: GpuTensor,
  elements = sizeOf(t.dims),
  bytes = 4,
): void {
  if (t.buffer.size < elements * bytes)
    throw new OpError(op, `${what}: its buffer holds ${t.buffer.size} bytes, needs ${elements * bytes}`);
}
