/**
 * A graph prepared for the CPU backend: runs the engine's plan node by node on the CPU kernels (the op's
 * reference where there is none), asynchronously. The event loop stays responsive two ways: kernels that
 * take long (large GEMMs) run on the thread pool while this thread awaits them, and between nodes the run
 * yields to the event loop once it has held the thread for SLICE_MS.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { runNodeGuarded } from "../../errors.js";
import type { DType } from "../../ir/dtype.js";
import type { Graph, Node } from "../../ir/graph.js";
import { opsetOf } from "../../ir/graph.js";
import { Tensor } from "../../ir/tensor.js";
import { referenceWith } from "../../ops/compute.js";
import { gatherInputs } from "../../ops/evaluate.js";
import { type OpDef, resolveOp } from "../../ops/index.js";
import type { ExecutionPlan, PreparedGraph, RunOptions } from "../backend.js";
import type { KernelDef } from "../kernel-registry.js";
import { BoundPlan } from "./bound-plan.js";
import type { BufferLease } from "./buffer-pool.js";
import type { CpuCompute } from "./compute.js";
import { awaitNoticingTurn } from "./event-loop-turn.js";
import { cpuKernels } from "./kernels.js";

/**
 * Longest stretch of synchronous kernels between two yields to the event loop: 8 ms, as the native GEMM's
 * slices. Each yield costs ~0.1 ms here; at batch 1 (every GEMM one slice, so the clock is all that yields) 4 ms
 * slices made a 4-layer BERT-base-width [1,128] run 2.5% slower and 8 ms 1.2% (`bench/compare-checkouts.ts`
 * against the checkout that never yielded there, 30 pairs, median of per-pair ratios) with a 5 ms timer then
 * waiting at most 6–10 ms.
 */
export const SLICE_MS = 8;

/** What one run needs from the backend that prepared it. */
export interface CpuRunResources {
  /** Primitives whose outputs come from the buffer pool, and the lease that tracks them for this run. */
  pooled(): { compute: CpuCompute; lease: BufferLease };
  /** Primitives allocating fresh arrays (runs that keep their intermediates). */
  unpooled(): CpuCompute;
}

export class CpuPreparedGraph implements PreparedGraph {
  private readonly opsets: number[];
  private readonly ops: OpDef[];
  /** Per step: the kernel chosen for each input-dtype signature seen (null: the reference runs). */
  private readonly kernels: Map<string, KernelDef<CpuCompute> | null>[];

  /** The bound plan runs take (bound-plan.ts), or undefined when the backend was asked for plain runs. */
  readonly bound: BoundPlan | undefined;

  constructor(
    private readonly graph: Graph,
    private readonly plan: ExecutionPlan,
    private readonly resources: CpuRunResources,
    bind = true,
  ) {
    this.opsets = plan.order.map((n) => opsetOf(graph, n.domain));
    // Refuse at prepare time, by name, any op unknown or older than the schema mhafuse implements.
    this.ops = plan.order.map((n, i) => resolveOp(n, this.opsets[i]!));
    this.kernels = plan.order.map(() => new Map());
    this.bound = bind
      ? new BoundPlan(graph.initializers, plan.order, plan.releaseAfter, this.opsets, this.ops, (...a) =>
          this.kernelFor(...a),
        )
      : undefined;
  }

  async run(
    feeds: Readonly<Record<string, Tensor>>,
    fetches: readonly string[],
    options: RunOptions = {},
  ): Promise<Record<string, Tensor>> {
    const keep = options.keepIntermediates ?? false;
    if (!keep && this.bound) {
      const { compute, lease } = this.resources.pooled();
      return this.bound.run(feeds, fetches, compute, lease, SLICE_MS);
    }
    const { compute, lease } = keep
      ? { compute: this.resources.unpooled(), lease: undefined }
      : this.resources.pooled();
    const values = new Map<string, Tensor>(this.graph.initializers);
    for (const [k, v] of Object.entries(feeds)) values.set(k, v);
    /** Values produced by this run (only those hold pool buffers). */
    const produced = new Set<string>();
    const { order, releaseAfter } = this.plan;
    let sliceStart = performance.now();
    for (let step = 0; step < order.length; step++) {
      const node = order[step]!;
      const inputs = gatherInputs(node, values);
      const opset = this.opsets[step]!;
      const kernel = this.kernelFor(step, node, opset, inputs);
      // Raw exceptions from a kernel, sync or async, become coded errors naming the node (issue 13).
      let outputs = runNodeGuarded(node, () =>
        kernel
          ? kernel.run({ node, opset, compute, allowAsync: true }, inputs)
          : this.ops[step]!.run({ node, opset, compute: referenceWith(compute) }, inputs),
      );
      if (outputs instanceof Promise) {
        // The slice restarts only if the event loop really turned during the await (awaitNoticingTurn).
        let settled: { value: Tensor[]; turned: boolean };
        try {
          settled = await awaitNoticingTurn(outputs);
        } catch (err) {
          runNodeGuarded(node, () => {
            throw err;
          });
          throw err;
        }
        outputs = settled.value;
        if (settled.turned) sliceStart = performance.now();
      }
      for (let i = 0; i < node.outputs.length; i++) {
        const name = node.outputs[i];
        const t = outputs[i];
        if (!name || !t) continue;
        values.set(name, t);
        produced.add(name);
        lease?.hold(t.data);
      }
      if (!keep) {
        for (const v of releaseAfter[step]!) {
          const t = values.get(v);
          if (t && produced.has(v)) lease?.drop(t.data);
          values.delete(v);
        }
      }
      if (performance.now() - sliceStart > SLICE_MS) {
        await nextTurn();
        sliceStart = performance.now();
      }
    }
    const result: Record<string, Tensor> = {};
    for (const name of keep ? [...values.keys()] : fetches) {
      const t = values.get(name);
      // The read-back edge: a fetched value in a pool buffer is copied out, then the buffer goes back.
      result[name] = t && lease?.pooled(t.data) ? copyOut(t) : t!;
    }
    if (lease) for (const name of produced) if (values.has(name)) lease.drop(values.get(name)!.data);
    return result;
  }

  kernelFor(
    step: number,
    node: Node,
    opset: number,
    inputs: (Tensor | undefined)[],
  ): KernelDef<CpuCompute> | undefined {
    const dtypes: (DType | undefined)[] = inputs.map((t) => t?.type);
    const key = dtypes.join();
    const cache = this.kernels[step]!;
    let k = cache.get(key);
    if (k === undefined) {
      k = cpuKernels.find(node, opset, dtypes) ?? null;
      cache.set(key, k);
    }
    return k ?? undefined;
  }
}

function copyOut(t: Tensor): Tensor {
  return new Tensor(t.type, t.data.slice() as Tensor["data"], t.dims);
}
