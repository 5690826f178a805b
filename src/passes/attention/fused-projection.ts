import type { Node } from "../../ir/graph.js";
import type { Tensor } from "../../ir/tensor.js";
import type { GraphView } from "../graph-view.js";
import { findProjection, shapeValue } from "./heads.js";

/**
 * Q, K and V from one fused projection X·W (+ b), W [E_in, 3E], in either of the two layouts exports use:
 *
 * - `split`: Q | K | V blocks of E columns each, split on the last axis by Split or three Slices — GPT-2's
 *   `c_attn` (a Conv1D: Reshape → Gemm → Reshape), Phi-3's `qkv_proj` (MatMul, no bias). The packed op needs
 *   the head-interleaved layout, so these are repacked.
 * - `head-interleaved`: per head [3, H] — GPT-NeoX's `query_key_value`, viewed as [B, S, N, 3H], transposed
 *   to heads and chunked into Q, K, V on the last axis. That is already the packed op's layout: the projection
 *   output feeds the op as it is.
 */
export interface FusedQkv {
  layout: "split" | "head-interleaved";
  /** The activation the projection reads ([B, S, E_in]). */
  input: string;
  weight: Tensor;
  bias?: Tensor;
  /** The projection's [B, S, 3E] output. */
  value: string;
  nodes: Node[];
}

const I64_MAX = 2 ** 63;

/** Identity, and the one-input Concat exports leave where a KV cache would be appended: the input itself. */
function skipIdentity(value: string, view: GraphView): string {
  let v = value;
  for (let i = 0; i < 4; i++) {
    const n = view.producer.get(v);
    if (n?.domain !== "") break;
    if (n.opType === "Identity" || (n.opType === "Concat" && n.inputs.length === 1)) v = n.inputs[0]!;
    else break;
  }
  return v;
}

interface Part {
  source: string;
  start: number;
  end: number;
  node: Node;
}

/** A Slice (step 1) or one output of a Split, on the last axis of `source`; `end` clamped to `width`. */
function partOf(
  value: string,
  view: GraphView,
  width: (source: string) => number | undefined,
): Part | undefined {
  const v = skipIdentity(value, view);
  const node = view.producer.get(v);
  if (node?.domain !== "") return undefined;
  const source = node.inputs[0]!;
  const rank = view.typeOf(source)?.shape?.length;
  const w = width(source);
  if (rank === undefined || w === undefined) return undefined;
  const lastAxis = (a: number) => a === -1 || a === rank - 1;
  if (node.opType === "Slice") {
    const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) =>
      node.inputs[i] ? view.constant(node.inputs[i]!)?.toNumbers() : undefined,
    );
    if (!starts || !ends || starts.length !== 1 || ends.length !== 1) return undefined;
    if (axes?.length !== 1 || !lastAxis(axes[0]!)) return undefined;
    if (steps && (steps.length !== 1 || steps[0] !== 1)) return undefined;
    const clamp = (x: number) => (x < 0 ? Math.max(0, w + x) : Math.min(w, x >= I64_MAX / 2 ? w : x));
    return { source, start: clamp(starts[0]!), end: clamp(ends[0]!), node };
  }
  if (node.opType === "Split") {
    const axisAttr = node.attrs.axis;
    const axis = axisAttr?.type === "int" ? axisAttr.value : 0;
    if (!lastAxis(axis)) return undefined;
    const index = node.outputs.indexOf(v);
    const splitAttr = node.attrs.split;
    const sizes =
      (node.inputs[1] ? view.constant(node.inputs[1])?.toNumbers() : undefined) ??
      (splitAttr?.type === "ints" ? splitAttr.value : undefined) ??
      (w % node.outputs.length === 0
        ? new Array(node.outputs.length).fill(w / node.outputs.length)
        : undefined);
    if (!sizes || sizes.length !== node.outputs.length) return undefined;
    const start = sizes.slice(0, index).reduce((a, b) => a + b, 0);
    return { source, start, end: start + sizes[index]!, node };
  }
  return undefined;
}

interface ProjectionTensors {
  input: string;
  weight: Tensor;
  bias?: Tensor;
  nodes: Node[];
}

const intAttrOf = (n: Node, name: string, fallback: number) => {
  const a = n.attrs[name];
  return a?.type === "int" ? a.value : a?.type === "float" ? a.value : fallback;
};

/** X·W (+ b) as MatMul (+ Add), or HF Conv1D's Reshape(Gemm(Reshape(X, [-1, E_in]), W, b), [B, S, 3E]). */
function projectionTensors(value: string, view: GraphView): ProjectionTensors | undefined {
  const p = findProjection(value, view);
  if (p) {
    const weight = view.constant(p.weight)!;
    return { input: p.input, weight, bias: p.bias ? view.constant(p.bias) : undefined, nodes: p.nodes };
  }
  const outer = view.producer.get(value);
  if (outer?.opType !== "Reshape") return undefined;
  const gemm = view.producer.get(outer.inputs[0]!);
  if (gemm?.opType !== "Gemm") return undefined;
  if (intAttrOf(gemm, "transA", 0) || intAttrOf(gemm, "transB", 0)) return undefined;
  if (intAttrOf(gemm, "alpha", 1) !== 1 || intAttrOf(gemm, "beta", 1) !== 1) return undefined;
  const weight = view.constant(gemm.inputs[1]!);
  const bias = gemm.inputs[2] ? view.constant(gemm.inputs[2]) : undefined;
  if (weight?.rank !== 2 || (gemm.inputs[2] && (bias?.rank !== 1 || bias.dims[0] !== weight.dims[1])))
    return undefined;
  const inner = view.producer.get(gemm.inputs[0]!);
  if (inner?.opType !== "Reshape") return undefined;
  const x = inner.inputs[0]!;
  if (view.typeOf(x)?.shape?.length !== 3) return undefined;
  // The outer Reshape must give back [B, S, 3E] of the input's batch and sequence.
  const target = shapeValue(outer.inputs[1]!, view);
  if (target?.length !== 3 || (target[2] !== weight.dims[1] && target[2] !== -1)) return undefined;
  return { input: x, weight, bias, nodes: [inner, gemm, outer] };
}

/** The split form: Q, K, V ([B, S, E] each, before the head split) are columns [0,E), [E,2E), [2E,3E). */
export function splitQkv(q: string, k: string, v: string, view: GraphView, e: number): FusedQkv | undefined {
  const width = (s: string) => projectionTensors(s, view)?.weight.dims[1];
  const parts = [q, k, v].map((x) => partOf(x, view, width));
  if (parts.some((p) => !p || p.source !== parts[0]!.source)) return undefined;
  if (!parts.every((p, i) => p!.start === i * e && p!.end === (i + 1) * e)) return undefined;
  const proj = projectionTensors(parts[0]!.source, view)!;
  if (proj.weight.dims[1] !== 3 * e) return undefined;
  const nodes = [...new Set(parts.map((p) => p!.node))];
  return { layout: "split", ...proj, value: parts[0]!.source, nodes: [...nodes, ...proj.nodes] };
}

/**
 * The head-interleaved form: Q, K, V ([B, N, S, H] each) are chunks [0,H), [H,2H), [2H,3H) of
 * Transpose(Reshape(P, [B, S, N, 3H]), [0, 2, 1, 3]) with P = X·W (+ b), W [E_in, 3·N·H].
 */
export function interleavedQkv(
  q: string,
  k: string,
  v: string,
  view: GraphView,
  numHeads: number,
  headSize: number,
): FusedQkv | undefined {
  const width = (s: string) => {
    const d = view.typeOf(s)?.shape?.at(-1);
    return typeof d === "number" ? d : undefined;
  };
  const parts = [q, k, v].map((x) => partOf(x, view, width));
  if (parts.some((p) => !p || p.source !== parts[0]!.source)) return undefined;
  if (!parts.every((p, i) => p!.start === i * headSize && p!.end === (i + 1) * headSize)) return undefined;
  const transpose = view.producer.get(parts[0]!.source);
  const perm = transpose?.attrs.perm;
  if (transpose?.opType !== "Transpose" || perm?.type !== "ints" || perm.value.join() !== "0,2,1,3")
    return undefined;
  const reshape = view.producer.get(transpose.inputs[0]!);
  if (reshape?.opType !== "Reshape") return undefined;
  const target = shapeValue(reshape.inputs[1]!, view);
  if (target?.length !== 4 || target[3] !== 3 * headSize) return undefined;
  if (target[2] !== numHeads && target[2] !== -1) return undefined;
  const p = reshape.inputs[0]!;
  const proj = projectionTensors(p, view);
  if (!proj || proj.weight.dims[1] !== 3 * numHeads * headSize) return undefined;
  const nodes = [...new Set(parts.map((x) => x!.node)), transpose, reshape];
  return { layout: "head-interleaved", ...proj, value: p, nodes: [...nodes, ...proj.nodes] };
}

/**
 * For the report when Q does not come straight from the split (rotary or a norm in between): the layout of a
 * fused QKV projection found within a few nodes above Q, if any.
 */
export function fusedLayoutAbove(
  q: string,
  view: GraphView,
  e: number,
  headSize: number,
): FusedQkv["layout"] | undefined {
  const seen = new Set<string>();
  const stack: [string, number][] = [[q, 0]];
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (seen.has(value) || depth > 10) continue;
    seen.add(value);
    const node = view.producer.get(value);
    if (!node || node.opType === "MatMul") continue;
    if (node.opType === "Slice" || node.opType === "Split") {
      const source = node.inputs[0]!;
      const t = view.producer.get(source);
      const last = view.typeOf(source)?.shape?.at(-1);
      if (t?.opType === "Transpose" && last === 3 * headSize) return "head-interleaved";
      if (projectionTensors(source, view)?.weight.dims[1] === 3 * e) return "split";
    }
    for (const i of node.inputs) if (i && !view.constant(i)) stack.push([i, depth + 1]);
  }
  return undefined;
}
