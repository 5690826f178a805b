/**
 * A CPU prepared graph's bound plan: the run loop with each node's call resolved once and kept, so a later
 * run of the same shapes is a tight loop of kernel calls. Values live in an array indexed by slot (not a map
 * by name); each step keeps its kernel and, where it can, a binding:
 *  - a native GEMM (MatMul, Gemm, FusedGemm): the problems with their packed weights, offsets, strides, bias
 *    and activation — a run calls the addon with its A (and FusedGemm's residual) and a pooled C, without the
 *    op's contract;
 *  - a view (Reshape, Squeeze, Unsqueeze, Flatten, Identity, an order-preserving Transpose): the output dims;
 *  - any other node: its kernel (or the op's reference) and the dtypes it was chosen for.
 * A binding holds only while what it was made from holds: the input dims (and dtypes), and the very tensors
 * of every other input (initializers: weights, biases, shapes). Where one differs — padding removal's token
 * count follows the mask, so its graph's dims change from run to run — the step runs through its kernel
 * as the plain loop does and is bound again. Outputs are the plain loop's, bit for bit: the same kernels on
 * the same arguments.
 *
 * Why: at batch 1 the plain loop spent ~4.5 ms of a 4-layer BERT-base-width [1,128] run in JS outside the
 * kernels (110–125 µs per Gemm node), half of it cache misses after each GEMM streamed its weights through
 * the caches (bench/README.md, "What is left at batch 1"); the less code and data a node touches between two
 * kernels, the less there is to miss. Measured (2-vCPU EPYC box, 11-29 10:56–11:12 UTC, `node --import tsx
 * bench/bind-ab.ts`, median of per-pair ratios against `replay: false`): [1,128] 0.966–0.991 in five runs,
 * [8,128] 0.996, a padded [8,128] 0.983–1.028 — about 2% at batch 1, though those runs bound no GEMM of a fused
 * graph (Gemm's bias row was a fresh subarray each run, not the immutable initializer; fixed in the op). With
 * them bound (12:40–12:47 UTC, same command): [1,128] 0.965 and 0.947, [8,128] 0.961. Most of what is left is
 * the misses themselves: a bound GEMM step still spends ~100 µs before and after its addon call when it follows
 * a GEMM (measured before the fix).
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { OpError, runNodeGuarded } from "../../errors.js";
import type { DType } from "../../ir/dtype.js";
import type { Node } from "../../ir/graph.js";
import { Tensor } from "../../ir/tensor.js";
import { type OpCompute, referenceWith } from "../../ops/compute.js";
import type { OpDef } from "../../ops/index.js";
import type { KernelContext, KernelDef } from "../kernel-registry.js";
import type { BufferLease } from "./buffer-pool.js";
import type { CpuCompute } from "./compute.js";
import { awaitNoticingTurn } from "./event-loop-turn.js";
import { isImmutable } from "./immutable.js";
import { gemmGoesAsync, isGemmKernel, runGemmCall } from "./kernels.js";
import {
  type BoundGemm,
  bindNativeGemm,
  runBoundGemm,
  sliceRows,
  useNativeThreads,
} from "./native-compute.js";

/** Ops whose kernel may hand its input's buffer on under new dims (the views a binding replays). */
const VIEW_OPS = new Set(["Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Transpose"]);

interface GemmBinding {
  kind: "gemm";
  /** Input 0's dims, and the other inputs (weights, bias: initializers, by identity) the binding was made for. */
  aDims: readonly number[];
  rest: readonly RestValue[];
  problems: readonly BoundGemm[];
  cLength: number;
  outDims: readonly number[];
  /** The kernel's choice between a one-call GEMM and the event-loop-sliced one (gemmGoesAsync). */
  sliced: boolean;
  /**
   * FusedGemm's residual (input 3, a value of the run, float32): its dims as bound; `rest` then covers inputs
   * 1–2 only. Undefined when the node has none.
   */
  residualDims?: readonly number[];
}

interface ViewBinding {
  kind: "view";
  inDims: readonly number[];
  inType: DType;
  /** Inputs 1… (shape, axes) as remembered (snapshotRest): initializers by identity, the rest by value. */
  rest: readonly RestValue[];
  outDims: readonly number[];
}

interface KernelBinding {
  kind: "kernel";
  dtypes: readonly (DType | undefined)[];
  kernel: KernelDef<CpuCompute> | undefined;
}

type Binding = GemmBinding | ViewBinding | KernelBinding;

interface Step {
  node: Node;
  opset: number;
  op: OpDef;
  /** Slot of each input (-1: an omitted optional input), of each output (-1: unnamed). */
  ins: Int32Array;
  outs: Int32Array;
  /** Slots whose last reader this step is. */
  release: Int32Array;
  binding?: Binding;
  /** The kernel context for the compute it was made with (the backend's pooled compute: one per graph). */
  ctx?: KernelContext<CpuCompute>;
  refCtx?: { node: Node; opset: number; compute: OpCompute };
}

/** What the bound steps did over the plan's runs (tests and benches read it). */
export interface BoundPlanStats {
  runs: number;
  /** Steps run from a GEMM or view binding, and steps that (re)made one. */
  boundCalls: number;
  binds: number;
  /** Of `binds`, the GEMM bindings made. */
  gemmBinds: number;
}

export type KernelLookup = (
  step: number,
  node: Node,
  opset: number,
  inputs: (Tensor | undefined)[],
) => KernelDef<CpuCompute> | undefined;

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Elements up to which a binding's mutable input (a view's shape or axes) is remembered by value. */
const SMALL_REST = 64;

/**
 * A step's inputs 1… (a view's shape or axes, a GEMM's weights and bias) as a binding remembers them: an
 * initializer by identity (its data never changes); any other tensor — a feed the caller may rewrite in place,
 * a shape computed this run — by its dtype, dims and values, copied. Undefined where one is too large to compare
 * cheaply (no binding then).
 */
type RestValue =
  | undefined
  | { immutable: Tensor }
  | { type: DType; dims: readonly number[]; values: unknown[] };

function snapshotRest(rest: readonly (Tensor | undefined)[]): RestValue[] | undefined {
  const out: RestValue[] = [];
  for (const t of rest) {
    if (!t) out.push(undefined);
    else if (isImmutable(t.data)) out.push({ immutable: t });
    else if (t.size <= SMALL_REST)
      out.push({ type: t.type, dims: t.dims, values: Array.from(t.data as ArrayLike<unknown>) });
    else return undefined;
  }
  return out;
}

/** Inputs 1… hold what `snapshotRest` remembered: the same initializers, equal values elsewhere. */
function sameRest(inputs: readonly (Tensor | undefined)[], rest: readonly RestValue[]): boolean {
  if (inputs.length !== rest.length + 1) return false;
  for (let i = 0; i < rest.length; i++) {
    const t = inputs[i + 1];
    const r = rest[i];
    if (!r || !t) {
      if (r || t) return false;
      continue;
    }
    if ("immutable" in r) {
      if (t !== r.immutable) return false;
      continue;
    }
    if (t.type !== r.type || !sameDims(t.dims, r.dims)) return false;
    const d = t.data as ArrayLike<unknown>;
    for (let j = 0; j < r.values.length; j++) if (d[j] !== r.values[j]) return false;
  }
  return true;
}

export class BoundPlan {
  readonly stats: BoundPlanStats = { runs: 0, boundCalls: 0, binds: 0, gemmBinds: 0 };
  private readonly slotOf = new Map<string, number>();
  /** Initializers in their slots; a run starts from a copy. */
  private readonly initial: (Tensor | undefined)[] = [];
  private readonly steps: Step[];

  constructor(
    initializers: ReadonlyMap<string, Tensor>,
    order: readonly Node[],
    releaseAfter: readonly (readonly string[])[],
    opsets: readonly number[],
    ops: readonly OpDef[],
    private readonly kernelFor: KernelLookup,
  ) {
    for (const [name, t] of initializers) this.initial[this.slot(name)] = t;
    this.steps = order.map((node, i) => ({
      node,
      opset: opsets[i]!,
      op: ops[i]!,
      ins: Int32Array.from(node.inputs, (n) => (n ? this.slot(n) : -1)),
      outs: Int32Array.from(node.outputs, (n) => (n ? this.slot(n) : -1)),
      release: Int32Array.from(releaseAfter[i]!, (n) => this.slot(n)),
    }));
    this.initial.length = this.slotOf.size;
  }

  private slot(name: string): number {
    let s = this.slotOf.get(name);
    if (s === undefined) {
      s = this.slotOf.size;
      this.slotOf.set(name, s);
    }
    return s;
  }

  /**
   * One run, as CpuPreparedGraph's plain loop: outputs in pooled buffers tracked by `lease`, fetched ones
   * copied out; yields to the event loop once it has held the thread for `sliceMs`.
   */
  async run(
    feeds: Readonly<Record<string, Tensor>>,
    fetches: readonly string[],
    compute: CpuCompute,
    lease: BufferLease,
    sliceMs: number,
  ): Promise<Record<string, Tensor>> {
    this.stats.runs++;
    const vals = this.initial.slice();
    for (const name in feeds) {
      const s = this.slotOf.get(name);
      if (s !== undefined) vals[s] = feeds[name];
    }
    /** Slots holding values this run produced (only those hold pool buffers). */
    const produced = new Uint8Array(vals.length);
    const steps = this.steps;
    let sliceStart = performance.now();
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      const { ins, outs, node } = step;
      const inputs: (Tensor | undefined)[] = new Array(ins.length);
      for (let j = 0; j < ins.length; j++) {
        const s = ins[j]!;
        if (s < 0) continue;
        const t = vals[s];
        if (!t) throw new OpError(node, `input '${node.inputs[j]}' has no value (graph input not fed?)`);
        inputs[j] = t;
      }
      let outputs: Tensor[];
      try {
        const r = this.runStep(i, step, inputs, compute);
        if (r instanceof Promise) {
          // The slice restarts only if the event loop really turned meanwhile — as in the plain loop.
          const settled = await awaitNoticingTurn(r);
          outputs = settled.value;
          if (settled.turned) sliceStart = performance.now();
        } else outputs = r;
      } catch (err) {
        // Raw exceptions from a kernel, sync or async, become coded errors naming the node (issue 13).
        runNodeGuarded(node, () => {
          throw err;
        });
        throw err;
      }
      for (let j = 0; j < outs.length; j++) {
        const s = outs[j]!;
        const t = outputs[j];
        if (s < 0 || !t) continue;
        vals[s] = t;
        produced[s] = 1;
        lease.hold(t.data);
      }
      const release = step.release;
      for (let j = 0; j < release.length; j++) {
        const s = release[j]!;
        const t = vals[s];
        if (t && produced[s]) lease.drop(t.data);
        vals[s] = undefined;
      }
      if (performance.now() - sliceStart > sliceMs) {
        await nextTurn();
        sliceStart = performance.now();
      }
    }
    const result: Record<string, Tensor> = {};
    for (const name of fetches) {
      const s = this.slotOf.get(name);
      const t = s === undefined ? feeds[name] : vals[s];
      // The read-back edge: a fetched value in a pool buffer is copied out, then the buffer goes back.
      result[name] = t && lease.pooled(t.data) ? copyOut(t) : t!;
    }
    for (let s = 0; s < vals.length; s++) if (produced[s] && vals[s]) lease.drop(vals[s]!.data);
    return result;
  }

  /** One step: from its binding where that still holds, else through its kernel (binding it anew). */
  private runStep(
    index: number,
    step: Step,
    inputs: (Tensor | undefined)[],
    compute: CpuCompute,
  ): Tensor[] | Promise<Tensor[]> {
    const b = step.binding;
    if (b?.kind === "gemm") {
      const a = inputs[0];
      const r = b.residualDims ? inputs[3] : undefined;
      const residualHolds =
        !b.residualDims || (r?.type === "float32" && sameDims(r.dims, b.residualDims) && inputs.length === 4);
      const head = b.residualDims ? inputs.slice(0, 3) : inputs;
      if (a && a.type === "float32" && sameDims(a.dims, b.aDims) && residualHolds && sameRest(head, b.rest)) {
        this.stats.boundCalls++;
        const c = compute.allocFloat32!(b.cLength);
        return runGemmBinding(compute, b, a.data as Float32Array, c, r?.data as Float32Array | undefined);
      }
    } else if (b?.kind === "view") {
      const x = inputs[0];
      if (x && x.type === b.inType && sameDims(x.dims, b.inDims) && sameRest(inputs, b.rest)) {
        this.stats.boundCalls++;
        return [x.reshape(b.outDims)];
      }
    } else if (b?.kind === "kernel" && sameTypes(inputs, b.dtypes)) {
      return this.runKernel(step, b.kernel, inputs, compute);
    }
    return this.bindAndRun(index, step, inputs, compute);
  }

  private bindAndRun(
    index: number,
    step: Step,
    inputs: (Tensor | undefined)[],
    compute: CpuCompute,
  ): Tensor[] | Promise<Tensor[]> {
    const { node } = step;
    const kernel = this.kernelFor(index, node, step.opset, inputs);
    const dtypes = inputs.map((t) => t?.type);
    step.binding = { kind: "kernel", dtypes, kernel };
    if (isGemmKernel(kernel) && compute.gemmOnNative && compute.native) {
      const ctx = this.ctxOf(step, compute);
      const call = kernel.gemmCall(ctx, inputs);
      if (!call) return kernel.run(ctx, inputs);
      const a = inputs[0]!;
      const C = call.problems[0]?.C;
      const bound =
        a.type === "float32" && C && call.problems.every((p) => p.A === a.data && p.C === C)
          ? call.problems.map((p) => bindNativeGemm(compute.native!, p))
          : [];
      // A residual (FusedGemm's input 3) is the run's own value: bound by its dims, its array read each run.
      const r = inputs[3];
      const withResidual = bound.some((g) => g?.residual);
      const residualOk =
        !withResidual ||
        (r?.type === "float32" && call.problems.every((p) => !p.residual || p.residual === r.data));
      // Bound problems take B and the bias from initializers only (bindNativeGemm), so `rest` snapshots them.
      const rest = snapshotRest(inputs.slice(1, withResidual ? 3 : undefined));
      if (bound.length === 0 || bound.some((g) => !g) || !rest || !residualOk) return runGemmCall(ctx, call);
      const output = call.output();
      const binding: GemmBinding = {
        kind: "gemm",
        aDims: a.dims,
        rest,
        problems: bound as BoundGemm[],
        cLength: C!.length,
        outDims: output.dims,
        sliced: gemmGoesAsync(ctx, call.problems),
        ...(withResidual && { residualDims: r!.dims }),
      };
      step.binding = binding;
      this.stats.binds++;
      this.stats.gemmBinds++;
      const residual = withResidual ? (r!.data as Float32Array) : undefined;
      return runGemmBinding(compute, binding, a.data as Float32Array, C!, residual);
    }
    const outputs = this.runKernel(step, kernel, inputs, compute);
    const x = inputs[0];
    if (VIEW_OPS.has(node.opType) && node.domain === "" && x && !(outputs instanceof Promise)) {
      const [y] = outputs;
      const rest = snapshotRest(inputs.slice(1));
      if (outputs.length === 1 && y && y.data === x.data && y.type === x.type && rest) {
        step.binding = { kind: "view", inDims: x.dims, inType: x.type, rest, outDims: y.dims };
        this.stats.binds++;
      }
    }
    return outputs;
  }

  private runKernel(
    step: Step,
    kernel: KernelDef<CpuCompute> | undefined,
    inputs: (Tensor | undefined)[],
    compute: CpuCompute,
  ): Tensor[] | Promise<Tensor[]> {
    if (kernel) return kernel.run(this.ctxOf(step, compute), inputs);
    if (step.refCtx?.compute !== referenceWith(compute))
      step.refCtx = { node: step.node, opset: step.opset, compute: referenceWith(compute) };
    return step.op.run(step.refCtx, inputs);
  }

  private ctxOf(step: Step, compute: CpuCompute): KernelContext<CpuCompute> {
    if (step.ctx?.compute !== compute)
      step.ctx = { node: step.node, opset: step.opset, compute, allowAsync: true };
    return step.ctx;
  }
}

function sameTypes(inputs: readonly (Tensor | undefined)[], dtypes: readonly (DType | undefined)[]): boolean {
  if (inputs.length !== dtypes.length) return false;
  for (let i = 0; i < dtypes.length; i++) if (inputs[i]?.type !== dtypes[i]) return false;
  return true;
}

/**
 * A bound GEMM on this run's A and C. Where the kernel would have gone async (large problems, threads > 1),
 * rows run in the native GEMM's event-loop slices with a turn between them (nativeGemmSliced's cut);
 * otherwise each problem is one call, as the kernel's synchronous path makes it.
 */
function runGemmBinding(
  compute: CpuCompute,
  b: GemmBinding,
  a: Float32Array,
  c: Float32Array,
  residual?: Float32Array,
): Tensor[] | Promise<Tensor[]> {
  const native = compute.native!;
  useNativeThreads(native, compute.threads);
  const output = () => [new Tensor("float32", c, b.outDims)];
  if (b.sliced && b.problems.some((g) => g.M > sliceRows(g.N, g.K))) {
    return (async () => {
      for (const g of b.problems) {
        if (g.N <= 0) continue;
        const step = sliceRows(g.N, g.K);
        for (let r0 = 0; r0 < g.M; r0 += step) {
          if (r0 > 0) await new Promise<void>((resolve) => setImmediate(resolve));
          runBoundGemm(native, g, a, c, r0, Math.min(g.M, r0 + step), g.residual ? residual : undefined);
        }
      }
      return output();
    })();
  }
  for (const g of b.problems)
    if (g.M > 0 && g.N > 0) runBoundGemm(native, g, a, c, 0, g.M, g.residual ? residual : undefined);
  return output();
}

function copyOut(t: Tensor): Tensor {
  return new Tensor(t.type, t.data.slice() as Tensor["data"], t.dims);
}
