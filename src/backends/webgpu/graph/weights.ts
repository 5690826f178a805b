/**
 * A graph's float32 initializers on the device, uploaded once at prepare: every one a GPU kernel may read,
 * and a Gemm's B with transB = 1 transposed on the host to [K, N] (the layout the SGEMM reads as vec4s).
 * In fp16 mode the inputs a kernel declares in `f16Weights` (GEMM operands and biases, embedding tables) are
 * converted to f16 here, on the GPU (one cast dispatch each, one submit per prepare), so an fp32 model runs
 * with f16 weights without a host conversion pass; the rest (norm scales, elementwise constants) stay f32.
 * Their buffers are never released by a run (the run state skips them), only by dispose().
 */
import type { Graph } from "../../../ir/graph.js";
import { opsetOf } from "../../../ir/graph.js";
import type { Tensor } from "../../../ir/tensor.js";
import { attrInt } from "../../../ops/registry.js";
import type { WebGpuContext } from "../context.js";
import { castF32ToF16 } from "../kernels/cast.js";
import type { CommandRecorder } from "../recorder.js";
import { isGemmNode, webgpuKernels } from "./kernels.js";
import { DeviceValue, storageBytes } from "./values.js";

/** Index of a variant: plain or transposed, f32 or f16. */
const variant = (transposed: boolean, f16: boolean) => (transposed ? 2 : 0) + (f16 ? 1 : 0);

export class WeightStore {
  readonly buffers = new Set<GPUBuffer>();
  readonly #variants = [0, 1, 2, 3].map(() => new Map<Tensor, DeviceValue>());

  constructor(private readonly gpu: WebGpuContext) {}

  /** Uploads what the graph's GPU-kernel nodes read from initializers; `f16`: fp16 mode. */
  static async prepare(gpu: WebGpuContext, graph: Graph, f16 = false): Promise<WeightStore> {
    const store = new WeightStore(gpu);
    const rec = f16 ? gpu.recorder({ label: "fp16 weights" }) : undefined;
    const scratch: GPUBuffer[] = [];
    for (const node of graph.nodes) {
      const kernel = webgpuKernels.find(node, opsetOf(graph, node.domain), ["float32"]);
      if (!kernel) continue;
      const host = new Set(kernel.hostInputs ?? []);
      const half = new Set(f16 ? (kernel.f16Weights ?? []) : []);
      node.inputs.forEach((name, i) => {
        const t = name ? graph.initializers.get(name) : undefined;
        if (t?.type !== "float32" || host.has(i)) return;
        const transB = isGemmNode(node) && i === 1 && attrInt(node, "transB", 0) !== 0;
        store.upload(t, transB && t.dims.length === 2, half.has(i) ? { rec: rec!, scratch } : undefined);
      });
    }
    if (rec) {
      await rec.submit();
      // Queue order: the casts read these before any later write to a reused buffer.
      for (const b of scratch) gpu.pool.release(b);
    }
    return store;
  }

  has(t: Tensor): boolean {
    return this.#variants.some((m) => m.has(t));
  }

  /** The uploaded variant (f16 only where prepare converted it). */
  get(t: Tensor, transposed = false, f16 = false): DeviceValue | undefined {
    return this.#variants[variant(transposed, f16)]!.get(t);
  }

  private upload(
    t: Tensor,
    transposed: boolean,
    half?: { rec: CommandRecorder; scratch: GPUBuffer[] },
  ): void {
    const map = this.#variants[variant(transposed, !!half)]!;
    if (map.has(t)) return;
    let data = t.data as Float32Array;
    let dims = t.dims;
    if (transposed) {
      const [N, K] = t.dims as [number, number];
      data = new Float32Array(K * N);
      const w = t.data as Float32Array;
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) data[k * N + n] = w[n * K + k]!;
      dims = [K, N];
    }
    const f32 = this.gpu.pool.upload(data.length ? data : new Float32Array(1));
    if (!half) {
      this.buffers.add(f32);
      map.set(t, new DeviceValue("float32", dims, f32));
      return;
    }
    half.scratch.push(f32);
    const out = this.gpu.pool.acquire(Math.max(4, storageBytes(data.length, true)));
    castF32ToF16(
      this.gpu,
      half.rec,
      { buffer: f32, dims: [data.length] },
      { buffer: out, dims: [data.length] },
    );
    this.buffers.add(out);
    map.set(t, new DeviceValue("float32", dims, out, true));
  }

  dispose(): void {
    for (const b of this.buffers) this.gpu.pool.release(b);
    this.buffers.clear();
    for (const m of this.#variants) m.clear();
  }
}
