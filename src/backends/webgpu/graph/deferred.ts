/**
 * Steps whose outputs only feed inputs that the GPU kernel reading them may not need (`lazyInputs` of a
 * kernel: the packed-QKV op's fallback bias, needed only for rows whose mask is not right-padded). A run
 * skips these steps and evaluates one only when a reader actually needs its value — so the [B, 1, S, S]
 * float mask that BERT exports build on the host is not rebuilt on every run when every sequence is
 * right-padded (the common case), while a left-padded batch still gets it.
 */
import { type Graph, type Node, opsetOf } from "../../../ir/graph.js";
import { webgpuKernels } from "./kernels.js";

export interface DeferredSteps {
  /** Per step: skip it in order, evaluate on demand. */
  readonly deferred: readonly boolean[];
  /** Value name → the deferred step producing it. */
  readonly producer: ReadonlyMap<string, number>;
  /** Values read by deferred steps: kept alive for the whole run (on-demand evaluation may come late). */
  readonly keepAlive: ReadonlySet<string>;
}

/** Inputs of `node` its GPU kernel may leave unread (the float32 kernel: what the graph's kernels are). */
function lazySlots(graph: Graph, node: Node): ReadonlySet<number> {
  const k = webgpuKernels.find(node, opsetOf(graph, node.domain), ["float32"]);
  return new Set(k?.lazyInputs ?? []);
}

export function deferredSteps(graph: Graph, order: readonly Node[]): DeferredSteps {
  const outputs = new Set(graph.outputs.map((o) => o.name));
  // Every (reader step, input slot) of each value.
  const readers = new Map<string, { step: number; slot: number }[]>();
  for (const [step, n] of order.entries())
    for (const [slot, name] of n.inputs.entries())
      if (name) readers.set(name, [...(readers.get(name) ?? []), { step, slot }]);

  const lazy = order.map((n) => lazySlots(graph, n));
  const deferred = order.map(() => false);
  // Reverse order: a step is deferred when each of its outputs is read only lazily or by deferred steps.
  for (let step = order.length - 1; step >= 0; step--) {
    const node = order[step]!;
    const outs = node.outputs.filter((o) => o);
    deferred[step] =
      outs.length > 0 &&
      outs.every(
        (o) =>
          !outputs.has(o) &&
          (readers.get(o)?.length ?? 0) > 0 &&
          readers.get(o)!.every((r) => deferred[r.step] || lazy[r.step]!.has(r.slot)),
      );
  }
  const producer = new Map<string, number>();
  const keepAlive = new Set<string>();
  order.forEach((n, step) => {
    if (!deferred[step]) return;
    for (const o of n.outputs) if (o) producer.set(o, step);
    for (const i of n.inputs) if (i) keepAlive.add(i);
  });
  return { deferred, producer, keepAlive };
}
