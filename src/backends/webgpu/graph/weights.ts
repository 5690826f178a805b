/**
 * A graph's float32 initializers on the device, uploaded once at prepare: every one a GPU kernel may read,
 * and a Gemm's B with transB = 1 transposed on the host to [K, N] (the layout the SGEMM reads as vec4s).
 * Their buffers are never released by a run (the run state skips them), only by dispose().
 */
import type { Graph } from "../../../ir/graph.js";
import { opsetOf } from "../../../ir/graph.js";
import type { Tensor } from "../../../ir/tensor.js";
import { attrInt } from "../../../ops/registry.js";
import type { WebGpuContext } from "../context.js";
import { webgpuKernels } from "./kernels.js";
import { DeviceValue } from "./values.js";

export class WeightStore {
  readonly buffers = new Set<GPUBuffer>();
  readonly #plain = new Map<Tensor, DeviceValue>();
  readonly #transposed = new Map<Tensor, DeviceValue>();

  constructor(private readonly gpu: WebGpuContext) {}

  /** Uploads what the graph's GPU-kernel nodes read from initializers. */
  static prepare(gpu: WebGpuContext, graph: Graph): WeightStore {
    const store = new WeightStore(gpu);
    for (const node of graph.nodes) {
      const kernel = webgpuKernels.find(node, opsetOf(graph, node.domain), ["float32"]);
      if (!kernel) continue;
      const host = new Set(kernel.hostInputs ?? []);
      node.inputs.forEach((name, i) => {
        const t = name ? graph.initializers.get(name) : undefined;
        if (t?.type !== "float32" || host.has(i)) return;
        const transB =
          node.opType === "Gemm" && node.domain === "" && i === 1 && attrInt(node, "transB", 0) !== 0;
        store.upload(t, transB && t.dims.length === 2);
      });
    }
    return store;
  }

  has(t: Tensor): boolean {
    return this.#plain.has(t) || this.#transposed.has(t);
  }

  get(t: Tensor, transposed = false): DeviceValue | undefined {
    return (transposed ? this.#transposed : this.#plain).get(t);
  }

  private upload(t: Tensor, transposed: boolean): void {
    const map = transposed ? this.#transposed : this.#plain;
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
    const buffer = this.gpu.pool.upload(data.length ? data : new Float32Array(1));
    this.buffers.add(buffer);
    map.set(t, new DeviceValue("float32", dims, buffer));
  }

  dispose(): void {
    for (const b of this.buffers) this.gpu.pool.release(b);
    this.buffers.clear();
    this.#plain.clear();
    this.#transposed.clear();
  }
}
