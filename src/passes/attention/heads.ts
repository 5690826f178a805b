import type { Dim, Node } from "../../ir/graph.js";
import type { GraphView } from "../graph-view.js";
import { any, isMatch, match, op, type Pattern } from "../pattern.js";
import { intAttr, intsAttr, type NodeFactory } from "../rewrite.js";

/**
 * From the 4-D per-head tensors MatMul(Q,Kᵀ)/MatMul(P,V) see ([B,N,S,H], Kᵀ as [B,N,H,S]) back to the
 * [B,S,N·H] activations the fused ops take. The usual export is Reshape([B,S,N,H]) + Transpose, which is
 * simply undone; anything else (rotary applied per head, GQA repeats, odd layouts) gets a Transpose +
 * Reshape emitted, so fusion never depends on the projection being recognisable.
 */

export interface HeadInput {
  /** [B, S, N·H] value for the fused op. */
  value: string;
  numHeads: number;
  headSize: number;
  /** Nodes of the original head split (become dead after fusion). */
  nodes: Node[];
  /** The original [B,S,E] activation when the split was the plain Reshape+Transpose form. */
  plain?: string;
}

export type Resolved<T> = T | { decline: string };

function permOf(node: Node): number[] | undefined {
  const p = node.attrs.perm;
  return p?.type === "ints" ? p.value : undefined;
}

const samePerm = (a: number[] | undefined, b: number[]) =>
  !!a && a.length === b.length && a.every((x, i) => x === b[i]);

/** Partial value of a small int64 shape tensor: numbers where known, null where computed at run time. */
export function shapeValue(value: string, view: GraphView, depth = 0): Dim[] | undefined {
  const t = view.constant(value);
  if (t) return t.rank <= 1 ? t.toNumbers() : undefined;
  const node = view.producer.get(value);
  const type = view.typeOf(value);
  const unknown = (): Dim[] | undefined => {
    const len = type?.shape?.length === 1 ? type.shape[0] : type?.shape?.length === 0 ? 1 : undefined;
    return typeof len === "number" ? new Array<Dim>(len).fill(null) : undefined;
  };
  if (!node || depth > 6 || node.domain !== "") return unknown();
  if (node.opType === "Concat") {
    const parts: Dim[] = [];
    for (const i of node.inputs) {
      const p = shapeValue(i, view, depth + 1);
      if (!p) return unknown();
      parts.push(...p);
    }
    return parts;
  }
  if (node.opType === "Shape" && !node.attrs.start && !node.attrs.end) {
    const shape = view.typeOf(node.inputs[0]!)?.shape;
    if (shape) return shape.map((d) => (typeof d === "number" ? d : null));
  }
  if (node.opType === "Gather") {
    // Gather(shape, scalar index): one entry of a shape (scalars are treated as 1-element lists here).
    const index = view.constant(node.inputs[1]!);
    if (index && index.size === 1) {
      const data = shapeValue(node.inputs[0]!, view, depth + 1);
      const i = index.getNumber(0);
      if (data) return [data[i < 0 ? data.length + i : i] ?? null];
      return [null];
    }
  }
  if (["Unsqueeze", "Squeeze", "Cast", "Identity", "Reshape"].includes(node.opType)) {
    const inner = shapeValue(node.inputs[0]!, view, depth + 1);
    if (inner && inner.length === 1) return inner;
  }
  return unknown();
}

function concreteDim(view: GraphView, value: string, axis: number): number | undefined {
  const shape = view.typeOf(value)?.shape;
  if (!shape) return undefined;
  const d = shape[axis < 0 ? shape.length + axis : axis];
  return typeof d === "number" ? d : undefined;
}

/** Last dimension of a [.., E] activation: from inferred types or the projection weight/bias behind it. */
export function hiddenSize(value: string, view: GraphView): number | undefined {
  const fromType = concreteDim(view, value, -1);
  if (fromType !== undefined) return fromType;
  const node = view.producer.get(value);
  if (!node) return undefined;
  if (node.opType === "Add" || node.opType === "MatMul") {
    for (const i of node.inputs) {
      const init = view.constant(i);
      if (init && init.rank >= 1 && (node.opType === "MatMul" ? i === node.inputs[1] : true))
        return init.dims.at(-1);
    }
    if (node.opType === "Add")
      for (const i of node.inputs) if (view.producer.get(i)?.opType === "MatMul") return hiddenSize(i, view);
  }
  return undefined;
}

const headSplit = (perm: number[]): Pattern =>
  op("Transpose", [op("Reshape", [any("x"), any("target")], { capture: "reshape" })], {
    capture: "transpose",
    check: (n) => (samePerm(permOf(n), perm) ? true : `Transpose perm ${permOf(n)} is not [${perm}]`),
  });

/** Reshape(X [B,S,E], [*,*,N,H]) + Transpose(perm): the plain head split; returns X and N, H. */
function plainSplit(value: string, perm: number[], view: GraphView): HeadInput | undefined {
  const m = match(headSplit(perm), value, view);
  if (!isMatch(m)) return undefined;
  const x = m.values.get("x")!;
  const xRank = view.typeOf(x)?.shape?.length;
  if (xRank !== undefined && xRank !== 3) return undefined;
  const target = shapeValue(m.values.get("target")!, view);
  if (target?.length !== 4) return undefined;
  const hidden = hiddenSize(x, view);
  const h = target[3];
  if (typeof h !== "number" || h <= 0) return undefined;
  let n = target[2];
  if (n === -1 || n === null) n = hidden !== undefined && hidden % h === 0 ? hidden / h : null;
  if (typeof n !== "number" || n <= 0) return undefined;
  if (hidden !== undefined && hidden !== n * h) return undefined;
  // The first two target entries must keep batch and sequence: copy (0) or run-time values, never a constant
  // other than what the input has.
  for (const [axis, d] of [target[0], target[1]].entries()) {
    if (typeof d === "number" && d !== 0 && d !== concreteDim(view, x, axis)) return undefined;
  }
  return { value: x, numHeads: n, headSize: h, nodes: [...m.matched], plain: x };
}

/** Emits Transpose(perm) + Reshape([0,0,N·H]) to turn a per-head tensor into [B,S,N·H]. */
function emitMerge(value: string, perm: number[], n: number, h: number, f: NodeFactory): string {
  const t = f.add("Transpose", [value], { perm: intsAttr(perm) });
  return f.add("Reshape", [t, f.int64s([0, 0, n * h])], { allowzero: intAttr(0) });
}

/** Q or V as [B,N,S,H] → [B,S,N·H]. */
export function resolveHeads(
  value: string,
  view: GraphView,
  f: NodeFactory,
  what: string,
): Resolved<HeadInput> {
  const plain = plainSplit(value, [0, 2, 1, 3], view);
  if (plain) return plain;
  const shape = view.typeOf(value)?.shape;
  if (shape?.length !== 4) {
    return { decline: `${what} '${value}' is not a 4-D [batch, heads, seq, head_size] tensor of known rank` };
  }
  const [n, h] = [shape[1], shape[3]];
  if (typeof n !== "number" || typeof h !== "number") {
    return { decline: `${what} '${value}' has unknown head count or head size (shape [${shape}])` };
  }
  return { value: emitMerge(value, [0, 2, 1, 3], n, h, f), numHeads: n, headSize: h, nodes: [] };
}

/** A [B,S,N,H] value (before the head transpose) → [B,S,N·H]: the Reshape's input when it split one. */
export function resolveTokenMajorHeads(
  value: string,
  view: GraphView,
  f: NodeFactory,
  what: string,
): Resolved<HeadInput> {
  const shape = view.typeOf(value)?.shape;
  const [n, h] = [shape?.[2], shape?.[3]];
  if (shape?.length !== 4 || typeof n !== "number" || typeof h !== "number")
    return { decline: `${what} '${value}' [B,S,N,H] has unknown head count or head size` };
  const split = view.producer.get(value);
  const x = split?.opType === "Reshape" ? split.inputs[0]! : undefined;
  if (x && view.typeOf(x)?.shape?.length === 3 && hiddenSize(x, view) === n * h)
    return { value: x, numHeads: n, headSize: h, nodes: [split!] };
  const merged = f.add("Reshape", [value, f.int64s([0, 0, n * h])], { allowzero: intAttr(0) });
  return { value: merged, numHeads: n, headSize: h, nodes: [] };
}

/** Kᵀ as [B,N,H,S] → [B,S,N·H]: the transposed split, Transpose(K,[0,1,3,2]) of a per-head K, or generic. */
export function resolveKeyHeads(kT: string, view: GraphView, f: NodeFactory): Resolved<HeadInput> {
  const plain = plainSplit(kT, [0, 2, 3, 1], view);
  if (plain) return plain;
  const node = view.producer.get(kT);
  if (node?.opType === "Transpose" && samePerm(permOf(node), [0, 1, 3, 2])) {
    const inner = resolveHeads(node.inputs[0]!, view, f, "K");
    if ("decline" in inner) return inner;
    return { ...inner, nodes: [node, ...inner.nodes] };
  }
  const shape = view.typeOf(kT)?.shape;
  if (shape?.length !== 4)
    return { decline: `Kᵀ '${kT}' is not a 4-D [batch, heads, head_size, seq] tensor` };
  const [n, h] = [shape[1], shape[2]];
  if (typeof n !== "number" || typeof h !== "number") {
    return { decline: `Kᵀ '${kT}' has unknown head count or head size (shape [${shape}])` };
  }
  return { value: emitMerge(kT, [0, 3, 1, 2], n, h, f), numHeads: n, headSize: h, nodes: [] };
}

/**
 * Grouped-query attention: K/V heads repeated to the query head count with Unsqueeze(2) + Expand or
 * Tile + Reshape (HF repeat_kv). Returns the unrepeated [B,Nkv,S,H] tensor, or undefined when not repeated.
 */
export function peelKvRepeat(value: string, view: GraphView): { value: string; nodes: Node[] } | undefined {
  const reshape = view.producer.get(value);
  if (reshape?.opType !== "Reshape") return undefined;
  const rep = view.producer.get(reshape.inputs[0]!);
  if (!rep || (rep.opType !== "Expand" && rep.opType !== "Tile")) return undefined;
  const unsq = view.producer.get(rep.inputs[0]!);
  if (unsq?.opType !== "Unsqueeze") return undefined;
  const axesAttr = unsq.attrs.axes;
  const axes = axesAttr?.type === "ints" ? axesAttr.value : view.constant(unsq.inputs[1] ?? "")?.toNumbers();
  if (axes?.length !== 1 || axes[0] !== 2) return undefined;
  if (rep.opType === "Tile") {
    // Tile must repeat only the new axis; repeating the head axis itself would interleave groups.
    const repeats = view.constant(rep.inputs[1] ?? "")?.toNumbers();
    if (repeats?.length !== 5 || repeats.some((r, i) => i !== 2 && r !== 1)) return undefined;
  }
  return { value: unsq.inputs[0]!, nodes: [reshape, rep, unsq] };
}

/** The Kᵀ side of GQA: Transpose(repeat(K), [0,1,3,2]) → the unrepeated K. */
export function peelKeyRepeat(kT: string, view: GraphView): { value: string; nodes: Node[] } | undefined {
  const node = view.producer.get(kT);
  if (node?.opType !== "Transpose" || !samePerm(permOf(node), [0, 1, 3, 2])) return undefined;
  const inner = peelKvRepeat(node.inputs[0]!, view);
  return inner ? { value: inner.value, nodes: [node, ...inner.nodes] } : undefined;
}

/** Transpose(K, [0,1,3,2]) of a per-head K: returns K ([B,N,S,H]) and the Transpose. */
export function untransposeKey(kT: string, view: GraphView): { value: string; nodes: Node[] } | undefined {
  const node = view.producer.get(kT);
  if (node?.opType !== "Transpose" || !samePerm(permOf(node), [0, 1, 3, 2])) return undefined;
  return { value: node.inputs[0]!, nodes: [node] };
}

/**
 * A KV-cache update: Concat(past, current) along the sequence axis of [B,N,S,H] tensors (HF's
 * DynamicCache.update). A one-input Concat — what exporters trace when the cache starts empty — is the
 * identity and has no past.
 */
interface CacheConcat {
  current: string;
  past?: string;
  node: Node;
}

function cacheConcat(value: string, view: GraphView): CacheConcat | undefined {
  const node = view.producer.get(value);
  if (node?.opType !== "Concat" || node.domain !== "") return undefined;
  const rank = view.typeOf(value)?.shape?.length;
  const a = node.attrs.axis;
  const axis = a?.type === "int" ? a.value : undefined;
  if (rank !== 4 || axis === undefined || (axis < 0 ? axis + rank : axis) !== 2) return undefined;
  const inputs = node.inputs.filter((i) => i);
  if (inputs.length === 1) return { current: inputs[0]!, node };
  if (inputs.length === 2) return { past: inputs[0]!, current: inputs[1]!, node };
  return undefined;
}

/**
 * The KV cache of a block: past inputs and present outputs for the fused op, when K and V (per head,
 * GQA repeats peeled) are both Concat(past, current) along the sequence; the Concats are removed.
 */
export interface KvCache {
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
  concats: Node[];
}

/**
 * K and V with their cache Concats looked through: the current step's values (undefined where there is
 * no Concat), and the cache when both have a past. A Concat with a past on only one of them stays.
 */
export function kvCache(
  k: string | undefined,
  v: string,
  view: GraphView,
): { k?: string; v?: string; cache?: KvCache } {
  const kc = k ? cacheConcat(k, view) : undefined;
  const vc = cacheConcat(v, view);
  if (kc?.past && vc?.past) {
    const cache = {
      pastKey: kc.past,
      pastValue: vc.past,
      presentKey: kc.node.outputs[0]!,
      presentValue: vc.node.outputs[0]!,
      concats: [kc.node, vc.node],
    };
    return { k: kc.current, v: vc.current, cache };
  }
  return { k: kc && !kc.past ? kc.current : undefined, v: vc && !vc.past ? vc.current : undefined };
}

/** A projection X·W (+ b) with constant W [E_in, E_out] and optional constant bias [E_out]. */
export interface Projection {
  input: string;
  weight: string;
  bias?: string;
  nodes: Node[];
}

const projectionPattern: Pattern = op("MatMul", [any("input"), any("weight")], { capture: "matmul" });
const biasedProjection: Pattern = op("Add", [projectionPattern, any("bias")], { commutative: true });

export function findProjection(value: string, view: GraphView): Projection | undefined {
  const withBias = match(biasedProjection, value, view);
  const m = isMatch(withBias) ? withBias : match(projectionPattern, value, view);
  if (!isMatch(m)) return undefined;
  const weight = m.values.get("weight")!;
  const w = view.constant(weight);
  if (w?.rank !== 2) return undefined;
  const bias = m.values.get("bias");
  if (bias !== undefined) {
    const b = view.constant(bias);
    if (b?.rank !== 1 || b.dims[0] !== w.dims[1]) return undefined;
  }
  return { input: m.values.get("input")!, weight, bias, nodes: [...m.matched] };
}
