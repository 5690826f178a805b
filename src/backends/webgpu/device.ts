/**
 * WebGPU device acquisition for the webgpu backend: loads the optional `webgpu` package (Dawn's dawn.node),
 * asks for an adapter and a device with every optional feature this backend can use and the adapter's own
 * limits (the defaults cap workgroup memory at 16 KiB and storage bindings at 128 MiB, far below real GPUs),
 * and reports what it got. Failures to start are BackendUnavailableError so callers can fall back to the CPU.
 */
import { BackendUnavailableError, MhafuseError } from "../../errors.js";

/** Dawn toggles that expose shader-f16 and subgroup matrices on NVIDIA through Vulkan (not settable in browsers). */
export const DAWN_UNSAFE_TOGGLES = ["enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia"];

/**
 * Dawn's robustness transform: every storage and workgroup access of every shader clamped into bounds, which on
 * the H200 halves the tensor-core GEMM (bench/tc-roofline.ts, bench/RESULTS.md). The kernels here bound their
 * own accesses (loads clamped or masked at tile edges, stores checked), so the engine turns it off on dawn.node,
 * as onnxruntime's WebGPU execution provider does for its own device.
 */
export const DAWN_NO_ROBUSTNESS = "disable_robustness";

export interface WebGpuDeviceOptions {
  /** Dawn instance toggles, passed to `create()` of the `webgpu` package, e.g. DAWN_UNSAFE_TOGGLES. */
  toggles?: readonly string[];
  /**
   * Keep Dawn's robustness transform (bounds clamps in every shader): slower, for debugging a kernel suspected
   * of reading out of bounds. Default false (DAWN_NO_ROBUSTNESS); MHAFUSE_WEBGPU_ROBUSTNESS=1 sets it too.
   */
  robustness?: boolean;
  powerPreference?: GPUPowerPreference;
  /**
   * Adds DAWN_UNSAFE_TOGGLES to `toggles`: on NVIDIA through Vulkan, shader-f16 and subgroup matrices (tensor
   * cores) exist only behind them. Native (dawn.node) only; browsers do not let pages set toggles.
   */
  unsafeF16?: boolean;
  /** Features the caller cannot do without: a missing one is a BackendUnavailableError, not a silent fallback. */
  requiredFeatures?: readonly string[];
}

/** What the kernels may use; each flag is a feature the device was created with, not merely one the adapter has. */
export interface WebGpuFeatures {
  subgroups: boolean;
  shaderF16: boolean;
  timestampQuery: boolean;
  /** `chromium-experimental-subgroup-matrix` (tensor cores on NVIDIA; needs the unsafe toggles). */
  subgroupMatrix: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /**
   * Subgroups cover consecutive invocations of a one-dimensional workgroup, in order: subgroup_invocation_id is
   * local_invocation_index mod the subgroup size (probeSubgroupOrder, run on the device at creation). WGSL does
   * not promise it; the kernels that derive lanes or shuffle partners from local_invocation_index (the row-group
   * norms, the subgroup attention, tensor-core kernels without the subgroup_id builtin) run only where it holds.
   */
  subgroupsInOrder: boolean;
  /** The adapter's subgroup-matrix shapes (empty without the feature); kernels pick theirs from this list. */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
}

/** One subgroup-matrix shape: left M×K and right K×N of `componentType`, result M×N of `resultComponentType`. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/**
 * The adapter's subgroup-matrix configs. Chromium puts them on GPUAdapterInfo; some dawn.node builds on the
 * adapter itself — read both, as plain numbers and strings.
 */
function readSubgroupMatrixConfigs(adapter: GPUAdapter): SubgroupMatrixConfig[] {
  const a = adapter as unknown as {
    subgroupMatrixConfigs?: unknown;
    info?: { subgroupMatrixConfigs?: unknown };
  };
  const raw = a.info?.subgroupMatrixConfigs ?? a.subgroupMatrixConfigs;
  if (!raw || typeof (raw as Iterable<unknown>)[Symbol.iterator] !== "function") return [];
  const out: SubgroupMatrixConfig[] = [];
  for (const c of raw as Iterable<Record<string, unknown>>)
    out.push({
      componentType: String(c.componentType),
      resultComponentType: String(c.resultComponentType),
      M: Number(c.M),
      N: Number(c.N),
      K: Number(c.K),
    });
  return out;
}

export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** Optional features requested whenever the adapter has them. */
const WANTED_FEATURES = [
  "subgroups",
  "shader-f16",
  "timestamp-query",
  "chromium-experimental-subgroup-matrix",
] as const;

/** Limits raised to the adapter's value (kernels size their tiles from the device's limits, not the defaults). */
const RAISED_LIMITS = [
  "maxComputeWorkgroupStorageSize",
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

interface WebGpuModule {
  create(options: string[]): GPU;
}

let modulePromise: Promise<WebGpuModule> | undefined;

/** The `webgpu` package, loaded once; a variable specifier keeps tsc from requiring the optional dependency. */
async function loadWebGpuModule(): Promise<WebGpuModule> {
  const name = "webgpu";
  modulePromise ??= (import(name) as Promise<WebGpuModule>).catch((e: unknown) => {
    modulePromise = undefined;
    throw new BackendUnavailableError(
      "webgpu",
      `the optional package 'webgpu' (dawn.node) could not be loaded: ${(e as Error).message}`,
    );
  });
  return modulePromise;
}

/** One GPU device and what it can do. `dispose()` destroys the device; every buffer made on it dies with it. */
export class WebGpuDevice {
  readonly device: GPUDevice;
  readonly features: WebGpuFeatures;
  readonly limits: GPUSupportedLimits;
  readonly adapterInfo: WebGpuAdapterInfo;
  /** Whether Dawn's robustness transform is on for this device's shaders (WebGpuDeviceOptions.robustness). */
  readonly robustness: boolean;
  /** Set when the device is lost (driver reset, or dispose()); later work fails with WebGpuError. */
  lostReason: string | undefined;
  #disposed = false;
  /**
   * The dawn.node instance. Held for the device's lifetime: if it is garbage-collected, Dawn tears the instance
   * down under the live device and the process crashes in Dawn's or the driver's threads.
   */
  readonly #instance: GPU;

  constructor(
    instance: GPU,
    device: GPUDevice,
    features: WebGpuFeatures,
    info: WebGpuAdapterInfo,
    robustness = true,
  ) {
    this.#instance = instance;
    this.robustness = robustness;
    this.device = device;
    this.features = features;
    this.limits = device.limits;
    this.adapterInfo = info;
    device.lost.then((l) => {
      this.lostReason = this.#disposed ? "disposed" : `${l.reason}: ${l.message}`;
    });
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Throws when the device can no longer run work. */
  checkAlive(op: string): void {
    if (this.#disposed) throw new WebGpuError(op, "the WebGPU device was disposed");
    if (this.lostReason !== undefined)
      throw new WebGpuError(op, `the WebGPU device was lost (${this.lostReason})`);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.device.destroy();
    void this.#instance;
  }
}

/** A failure inside the webgpu backend while running work, naming the op (kernel) it happened in. */
export class WebGpuError extends MhafuseError {
  override name = "WebGpuError";
  readonly op: string;
  constructor(op: string, message: string) {
    super(`webgpu ${op}: ${message}`);
    this.op = op;
  }
}

/** Whether Dawn's robustness transform stays on: the option, else MHAFUSE_WEBGPU_ROBUSTNESS=1. */
export function robustnessWanted(options: WebGpuDeviceOptions): boolean {
  return options.robustness ?? process.env.MHAFUSE_WEBGPU_ROBUSTNESS === "1";
}

/**
 * The `create()` flags with every `enable-dawn-features=` and `disable-dawn-features=` merged into one flag
 * each (dawn.node keeps only the last value of a repeated flag), toggles deduplicated in order; other flags
 * pass through.
 */
export function dawnFlags(flags: readonly string[]): string[] {
  const merged = new Map<string, string[]>();
  const rest: string[] = [];
  for (const flag of flags) {
    const m = /^(enable|disable)-dawn-features=(.*)$/.exec(flag);
    if (!m) {
      rest.push(flag);
      continue;
    }
    const key = `${m[1]}-dawn-features`;
    const list = merged.get(key) ?? [];
    for (const t of m[2]!.split(",")) if (t !== "" && !list.includes(t)) list.push(t);
    merged.set(key, list);
  }
  return [...rest, ...[...merged].map(([k, v]) => `${k}=${v.join(",")}`)];
}

/** Workgroup sizes the kernels that rely on the subgroup layout use (norms 256, attention 128). */
const ORDER_PROBE_SIZES = [256, 128] as const;

/**
 * Whether subgroup_invocation_id = local_invocation_index mod subgroup_size in one-dimensional workgroups of
 * the sizes the kernels use: one tiny dispatch each, read back. Any failure (compile, validation, map) is
 * false — the kernels that need the layout then take their subgroup-free fallbacks.
 */
export async function probeSubgroupOrder(device: GPUDevice): Promise<boolean> {
  try {
    for (const size of ORDER_PROBE_SIZES) {
      device.pushErrorScope("validation");
      const module = device.createShaderModule({
        code: `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(${size})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_size) width: u32) {
  out[lid] = lane | (width << 16u);
}`,
      });
      const pipeline = device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      const bytes = 4 * size;
      // Usage and map-mode values fixed by the spec (Node has no GPUBufferUsage globals): STORAGE | COPY_SRC,
      // MAP_READ | COPY_DST; map mode READ = 1.
      const out = device.createBuffer({ size: bytes, usage: 128 | 4 });
      const read = device.createBuffer({ size: bytes, usage: 1 | 8 });
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(
        0,
        device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: [{ binding: 0, resource: { buffer: out } }],
        }),
      );
      pass.dispatchWorkgroups(1);
      pass.end();
      enc.copyBufferToBuffer(out, 0, read, 0, bytes);
      device.queue.submit([enc.finish()]);
      const error = await device.popErrorScope();
      if (error) return false;
      await read.mapAsync(1);
      const words = new Uint32Array(read.getMappedRange().slice(0));
      read.unmap();
      out.destroy();
      read.destroy();
      for (let lid = 0; lid < size; lid++) {
        const width = words[lid]! >>> 16;
        if (width === 0 || (words[lid]! & 0xffff) !== lid % width) return false;
      }
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates a device on the default (or preferred) adapter. Throws BackendUnavailableError when the `webgpu`
 * package is missing, no adapter exists (no Vulkan driver: run shared/tools/webgpu-cpu/install.sh for lavapipe),
 * or a required feature is absent.
 */
export async function createWebGpuDevice(options: WebGpuDeviceOptions = {}): Promise<WebGpuDevice> {
  const mod = await loadWebGpuModule();
  const robustness = robustnessWanted(options);
  let gpu: GPU;
  try {
    gpu = mod.create(
      dawnFlags([
        ...(options.toggles ?? []),
        ...(options.unsafeF16 ? DAWN_UNSAFE_TOGGLES : []),
        ...(robustness ? [] : [`enable-dawn-features=${DAWN_NO_ROBUSTNESS}`]),
      ]),
    );
  } catch (e) {
    throw new BackendUnavailableError("webgpu", `dawn.node could not start: ${(e as Error).message}`);
  }
  const adapter = await gpu.requestAdapter(
    options.powerPreference ? { powerPreference: options.powerPreference } : undefined,
  );
  if (!adapter)
    throw new BackendUnavailableError(
      "webgpu",
      "no WebGPU adapter (no Vulkan driver found; on a CPU-only machine install Mesa's lavapipe)",
    );
  const missing = (options.requiredFeatures ?? []).filter((f) => !adapter.features.has(f));
  if (missing.length > 0)
    throw new BackendUnavailableError("webgpu", `the adapter lacks required features: ${missing.join(", ")}`);
  const requiredFeatures = [
    ...new Set([
      ...WANTED_FEATURES.filter((f) => adapter.features.has(f)),
      ...(options.requiredFeatures ?? []),
    ]),
  ] as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof v === "number") requiredLimits[name] = v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (e) {
    throw new BackendUnavailableError("webgpu", `requestDevice failed: ${(e as Error).message}`);
  }
  const has = (f: string) => device.features.has(f);
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const features: WebGpuFeatures = {
    subgroups: has("subgroups"),
    shaderF16: has("shader-f16"),
    timestampQuery: has("timestamp-query"),
    subgroupMatrix: has("chromium-experimental-subgroup-matrix"),
    subgroupMinSize: info.subgroupMinSize ?? 0,
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    subgroupsInOrder: has("subgroups") && (await probeSubgroupOrder(device)),
    subgroupMatrixConfigs: has("chromium-experimental-subgroup-matrix")
      ? readSubgroupMatrixConfigs(adapter)
      : [],
  };
  return new WebGpuDevice(
    gpu,
    device,
    features,
    {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
    },
    robustness,
  );
}
