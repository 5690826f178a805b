/**
 * Precision of the webgpu kernels and what the device can do for fp16.
 *
 * `fp32` is the portable path (issue 10). `fp16` means f16 storage of activations and weights with f32
 * accumulation, and comes in two kernels per op:
 *  - "tensor-core": subgroup matrices (Dawn's chromium-experimental-subgroup-matrix; NVIDIA tensor cores through
 *    Vulkan cooperative matrices) with an f16→f32 config, plus shader-f16;
 *  - "simt": shader-f16 only — the fp32 kernels' tiling with f16 loads/stores and f32 math (lavapipe, and any
 *    adapter without subgroup matrices).
 * Without shader-f16 there is no f16 storage at all, and fp16 resolves to fp32 (the caller keeps fp32 tensors).
 * Every downgrade prints one line, once per device and reason, so a session knows what it actually runs.
 */
import { type SubgroupMatrixConfig, type WebGpuDevice, WebGpuError } from "./device.js";

export type Precision = "fp32" | "fp16";
export type F16Kernel = "tensor-core" | "simt";

/**
 * WGSL spelling of subgroupMatrixLoad/Store. Dawn changed it: "template" is
 * `subgroupMatrixLoad<T, row_major>(&p, offset, stride)`, "bool" the older
 * `subgroupMatrixLoad<T>(&p, offset, colMajor, stride)` (deprecated, but the one the H200's Dawn accepted).
 */
export type MatrixSyntax = "template" | "bool";

export interface F16Support {
  shaderF16: boolean;
  /** The f16→f32 config the tensor-core kernels use (16×16×16 preferred), when the adapter has one. */
  config?: SubgroupMatrixConfig;
  /** Which load/store spelling compiled (probed); undefined when neither did or there are no subgroup matrices. */
  syntax?: MatrixSyntax;
  /**
   * Whether a subgroup may pass offsets derived from its subgroup index (tid / 32) to subgroupMatrixLoad/Store:
   * Tint requires uniform offsets unless `diagnostic(off, subgroup_uniformity)` lifts that. Without it the
   * kernels run one subgroup per workgroup, so every offset derives from workgroup_id alone.
   */
  multiSubgroup?: boolean;
  /**
   * multiSubgroup holds only through `@builtin(subgroup_id)`: the tid / 32 form did not compile (the H200's
   * Dawn, 2026-11-28) but newer Tint treats the builtin as subgroup-uniform. Kernels then take the subgroup
   * and lane from the builtins (SUBGROUP_BUILTINS).
   */
  sgBuiltin?: boolean;
  /** Why tensor cores are not used, when they are not. */
  reason?: string;
}

export interface ResolvedPrecision {
  precision: Precision;
  /** For fp16: which kernels run. */
  kernel?: F16Kernel;
  /** The one-line notice printed when the request was downgraded. */
  notice?: string;
}

/**
 * The subgroup width a subgroup-matrix config's fragments are spread over: Intel's 8×16×16 runs on 16-wide
 * subgroups (its XMX units' native width); NVIDIA's 16×16×16 and Apple's 8×8×8 on 32.
 */
export function configLanes(c: Pick<SubgroupMatrixConfig, "M" | "N" | "K">): 16 | 32 {
  return c.M === 8 && c.N === 16 && c.K === 16 ? 16 : 32;
}

/** WGSL of a subgroup-matrix load: `kind` left/right/result, `T` component type, `rows`×`cols` in elements. */
export function matrixLoad(
  syntax: MatrixSyntax,
  type: string,
  ptr: string,
  offset: string,
  stride: string,
  colMajor = false,
): string {
  return syntax === "template"
    ? `subgroupMatrixLoad<${type}, ${colMajor ? "col_major" : "row_major"}>(${ptr}, ${offset}, ${stride})`
    : `subgroupMatrixLoad<${type}>(${ptr}, ${offset}, ${colMajor}, ${stride})`;
}

export function matrixStore(
  syntax: MatrixSyntax,
  ptr: string,
  offset: string,
  value: string,
  stride: string,
): string {
  return syntax === "template"
    ? `subgroupMatrixStore<row_major>(${ptr}, ${offset}, ${value}, ${stride})`
    : `subgroupMatrixStore(${ptr}, ${offset}, ${value}, false, ${stride})`;
}

/** WGSL types of a config: left M×K, right K×N, result M×N (Dawn's order is <T, columns, rows>). */
export function matrixTypes(c: Pick<SubgroupMatrixConfig, "M" | "N" | "K">, result = "f32") {
  return {
    left: `subgroup_matrix_left<f16, ${c.K}, ${c.M}>`,
    right: `subgroup_matrix_right<f16, ${c.N}, ${c.K}>`,
    result: `subgroup_matrix_result<${result}, ${c.N}, ${c.M}>`,
  };
}

/** Module header of every tensor-core kernel: subgroup-index-derived offsets are uniform per subgroup. */
export const TC_HEADER = `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, subgroup_uniformity);
`;

/** Entry-point parameters and header of kernels whose subgroup index comes from the builtins (sgBuiltin). */
export const SUBGROUP_BUILTINS = {
  enable: "enable subgroups;\n",
  params: ", @builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) sgLane: u32",
};

/** Per-subgroup offsets: "single" none, "tid" from local_invocation_index / 32, "builtin" from subgroup_id. */
type ProbeMode = "single" | "tid" | "builtin";

function probeSource(syntax: MatrixSyntax, c: SubgroupMatrixConfig, mode: ProbeMode = "single"): string {
  const t = matrixTypes(c);
  const lanes = configLanes(c);
  const off = mode === "tid" ? `(lid / ${lanes}u) * 256u` : mode === "builtin" ? "sgid * 256u" : "0u";
  const header =
    mode === "single"
      ? "enable f16;\nenable chromium_experimental_subgroup_matrix;\n"
      : `${TC_HEADER}${mode === "builtin" ? SUBGROUP_BUILTINS.enable : ""}`;
  return `${header}
@group(0) @binding(0) var<storage, read> A: array<f16>;
@group(0) @binding(1) var<storage, read_write> C: array<f32>;
var<workgroup> W: array<f16, ${c.K * c.N}>;
@compute @workgroup_size(${mode === "single" ? lanes : 2 * lanes})
fn main(@builtin(local_invocation_index) lid: u32${mode === "builtin" ? SUBGROUP_BUILTINS.params : ""}) {
  if (lid == 0u) { W[0] = A[0]; }
  workgroupBarrier();
  let a = ${matrixLoad(syntax, t.left, "&A", "0u", `${c.K}u`)};
  let b = ${matrixLoad(syntax, t.right, "&W", "0u", `${c.K}u`, true)};
  var acc = ${t.result}();
  acc = subgroupMatrixMultiplyAccumulate(a, b, acc);
  ${matrixStore(syntax, "&C", off, "acc", `${c.N}u`)};
}`;
}

/** True when `code` compiles to a pipeline without errors (compilation messages and validation scope). */
async function compiles(gpu: WebGpuDevice, code: string): Promise<boolean> {
  const device = gpu.device;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code, label: "subgroup-matrix probe" });
  const info = await module.getCompilationInfo();
  let ok = !info.messages.some((m) => m.type === "error");
  if (ok) {
    try {
      await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
    } catch {
      ok = false;
    }
  }
  const err = await device.popErrorScope();
  return ok && !err;
}

const supportCache = new WeakMap<WebGpuDevice, Promise<F16Support>>();

/** What fp16 can use on this device: probed once per device (the syntax probe compiles two tiny shaders). */
export function detectF16(gpu: WebGpuDevice): Promise<F16Support> {
  let p = supportCache.get(gpu);
  if (!p) {
    p = probe(gpu);
    supportCache.set(gpu, p);
  }
  return p;
}

async function probe(gpu: WebGpuDevice): Promise<F16Support> {
  const f = gpu.features;
  if (!f.shaderF16) return { shaderF16: false, reason: "the adapter has no shader-f16" };
  if (!f.subgroupMatrix)
    return {
      shaderF16: true,
      reason: "the adapter has no subgroup matrices (chromium-experimental-subgroup-matrix)",
    };
  if (!f.subgroups) return { shaderF16: true, reason: "the adapter has no subgroups" };
  const f16 = f.subgroupMatrixConfigs.filter(
    (c) => c.componentType === "f16" && c.resultComponentType === "f32",
  );
  // 16×16×16 (NVIDIA) first, else 8×8×8 (Apple), else 8×16×16 (Intel, 16-wide subgroups): the GEMM takes each
  // (the attention only 16×16×16, else its SIMT kernel runs); 8×8×8 and 8×16×16 are tested on emulated fragments
  // only (test/webgpu-f16.test.ts: no such device here).
  const config =
    f16.find((c) => c.M === 16 && c.N === 16 && c.K === 16) ??
    f16.find((c) => c.M === 8 && c.N === 8 && c.K === 8) ??
    f16.find((c) => c.M === 8 && c.N === 16 && c.K === 16);
  if (!config)
    return {
      shaderF16: true,
      reason: `no f16→f32 16×16×16, 8×8×8 or 8×16×16 subgroup-matrix config (adapter: ${f.subgroupMatrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(", ") || "none"})`,
    };
  // The kernels lay workgroups out for the config's subgroup width: the device's size must be it (a fixed size),
  // or its largest where it varies (what a compute pipeline gets without size control; NVIDIA: 32-32).
  const lanes = configLanes(config);
  const size = f.subgroupMinSize === f.subgroupMaxSize ? f.subgroupMinSize : f.subgroupMaxSize;
  if (f.subgroupMaxSize !== 0 && size !== lanes)
    return {
      shaderF16: true,
      config,
      reason: `subgroup size ${f.subgroupMinSize}-${f.subgroupMaxSize}: the ${config.M}×${config.N}×${config.K} kernels need ${lanes}`,
    };
  for (const syntax of ["template", "bool"] as const)
    if (await compiles(gpu, probeSource(syntax, config))) {
      // Subgroup and lane from local_invocation_index only where subgroups are laid out in invocation order.
      if (f.subgroupsInOrder && (await compiles(gpu, probeSource(syntax, config, "tid"))))
        return { shaderF16: true, config, syntax, multiSubgroup: true };
      const sgBuiltin = await compiles(gpu, probeSource(syntax, config, "builtin"));
      if (!sgBuiltin && !f.subgroupsInOrder)
        return {
          shaderF16: true,
          config,
          reason:
            "subgroups are not laid out in invocation order and the subgroup_id builtin did not compile",
        };
      return {
        shaderF16: true,
        config,
        syntax,
        multiSubgroup: sgBuiltin,
        ...(sgBuiltin ? { sgBuiltin } : {}),
      };
    }
  return { shaderF16: true, config, reason: "neither subgroupMatrixLoad spelling compiled" };
}

const noticed = new WeakMap<WebGpuDevice, Set<string>>();

function notice(gpu: WebGpuDevice, line: string): string {
  let seen = noticed.get(gpu);
  if (!seen) noticed.set(gpu, (seen = new Set()));
  if (!seen.has(line)) {
    seen.add(line);
    console.warn(line);
  }
  return line;
}

/**
 * What a request for `precision` gets on this device: fp16 on tensor cores, fp16 on the SIMT kernels (no
 * subgroup matrices), or fp32 (no shader-f16), with a one-line notice for each downgrade.
 */
export async function resolvePrecision(
  gpu: WebGpuDevice,
  precision: Precision,
  /** What asked for fp16, for the notice: "fp16 requested" (the option) or "float16 model" (its default). */
  asker = "fp16 requested",
): Promise<ResolvedPrecision> {
  if (precision === "fp32") return { precision };
  const s = await detectF16(gpu);
  if (!s.shaderF16)
    return {
      precision: "fp32",
      notice: notice(gpu, `mhafuse webgpu: ${asker}, running fp32: ${s.reason}`),
    };
  if (!s.syntax)
    return {
      precision: "fp16",
      kernel: "simt",
      notice: notice(gpu, `mhafuse webgpu: fp16 without tensor cores (SIMT f16 kernels): ${s.reason}`),
    };
  return { precision: "fp16", kernel: "tensor-core" };
}

/**
 * Whether fp16 sessions use the tensor-core attention kernel where the device has tensor cores: yes since it
 * passed on the H200 (bench/h200-tc-attention-{probe,diag,tests}.log; 14.5 TFLOP/s against 8.8 for the SIMT
 * f16 kernel at [8, 12, 512, 64]); MHAFUSE_TC_ATTENTION=0 turns it off (the tests read it too, to skip the
 * tensor-core rows).
 */
export function tcAttentionOptIn(): boolean {
  return process.env.MHAFUSE_TC_ATTENTION !== "0";
}

/** Throws unless the device can run f16 kernels (the caller should have resolved the precision first). */
export function requireF16(gpu: WebGpuDevice, op: string): void {
  if (!gpu.features.shaderF16)
    throw new WebGpuError(
      op,
      "precision fp16 needs shader-f16, which this device lacks (resolvePrecision falls back to fp32)",
    );
}

// Host-side f16 conversion (Node 20/22 have no Float16Array).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of `x`, rounded to nearest even; overflow to ±Inf, NaN kept NaN. */
export function f16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16 (or zero): shift the implicit bit in, round to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  // Rounding may carry into the exponent (up to Inf): the bits are still right.
  return sign | h;
}

export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f16 bits of every value, padded to a multiple of 2 elements (4-byte buffer sizes). */
export function toF16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length + (values.length & 1));
  for (let i = 0; i < values.length; i++) out[i] = f16Bits(values[i]!);
  return out;
}

export function fromF16(bits: Uint16Array, count = bits.length): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = f16ToNumber(bits[i]!);
  return out;
}
