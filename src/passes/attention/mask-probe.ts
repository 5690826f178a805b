import type { DType } from "../../ir/dtype.js";
import type { Dim, Graph, Node, ValueInfo } from "../../ir/graph.js";
import { topologicalOrder } from "../../ir/graph.js";
import { sizeOf, Tensor } from "../../ir/tensor.js";
import { evaluateGraph } from "../../ops/evaluate.js";
import type { GraphView } from "../graph-view.js";

/**
 * What an attention bias computes, found by running the nodes that compute it on small probe inputs.
 * Exporters build masks in wildly different ways (Where/Expand/Flatten/Gather index tricks, Trilu,
 * Range+Less, Cast/Sub/Mul); checking what they compute is more robust than matching how.
 *  - "padding": bias[b,·,i,j] = 0 where mask[b,j] ≠ 0 and very negative where it is 0, for every row i
 *  - "causal": very negative exactly where j > i + (Skv − Sq), zero elsewhere, no mask input involved
 *  - "causal+padding": both at once
 *  - "other": anything else (relative position bias, learned bias…): kept as an additive bias
 */
export type BiasClass =
  | { kind: "padding"; mask: string }
  | { kind: "causal" }
  | { kind: "causal+padding"; mask: string }
  | { kind: "other"; why: string };

/** Masked positions must be at least this negative (HF uses finfo.min, older code -10000). */
const MASKED = -1e4;
const CONE_LIMIT = 4000;
/** Probe sizes handed to symbolic dims, in order of first appearance: distinct so that mix-ups show. */
const PROBE_SIZES = [2, 6, 4, 7, 3, 5];

interface Cone {
  nodes: Node[];
  inputs: ValueInfo[];
  /** Shape(x) outputs whose x has a fully known (symbolic) shape: fed directly instead of computing x. */
  shapeLeaves: Map<string, Dim[]>;
}

function cone(value: string, view: GraphView): Cone | undefined {
  const nodes = new Set<Node>();
  const inputs = new Map<string, ValueInfo>();
  const shapeLeaves = new Map<string, Dim[]>();
  const stack = [value];
  const seen = new Set<string>();
  while (stack.length) {
    const v = stack.pop()!;
    if (!v || seen.has(v)) continue;
    seen.add(v);
    if (view.graphInputs.has(v)) {
      inputs.set(v, view.graph.inputs.find((i) => i.name === v)!);
      continue;
    }
    const node = view.producer.get(v);
    if (!node) continue;
    if (
      node.opType === "Shape" &&
      !node.attrs.start &&
      !node.attrs.end &&
      !view.graphInputs.has(node.inputs[0]!)
    ) {
      const shape = view.typeOf(node.inputs[0]!)?.shape;
      if (shape?.every((d) => d !== null)) {
        shapeLeaves.set(v, shape);
        continue;
      }
    }
    nodes.add(node);
    if (nodes.size > CONE_LIMIT) return undefined;
    for (const i of node.inputs) stack.push(i);
  }
  return { nodes: [...nodes], inputs: [...inputs.values()], shapeLeaves };
}

function probeDims(info: ValueInfo, sizes: Map<string, number>): number[] | undefined {
  if (!info.shape) return undefined;
  return info.shape.map((d) => {
    if (typeof d === "number") return d;
    const key = d ?? `?${sizes.size}`;
    if (!sizes.has(key)) sizes.set(key, PROBE_SIZES[sizes.size % PROBE_SIZES.length]!);
    return sizes.get(key)!;
  });
}

function filled(dtype: DType, dims: number[], values: (i: number) => number): Tensor {
  // Plain numbers: the Tensor constructor stores them as values of any dtype (BigInt, half bits).
  return new Tensor(
    dtype,
    Array.from({ length: sizeOf(dims) }, (_, i) => values(i)),
    dims,
  );
}

/** Row 0 right-padded (last two keys masked), row 1 with a hole, the rest all valid. */
function probeMask(b: number, j: number, s: number): number {
  if (b === 0) return j < s - 2 ? 1 : 0;
  if (b === 1) return j === 1 || j === s - 1 ? 0 : 1;
  return 1;
}

function evaluate(
  view: GraphView,
  value: string,
  feeds: Record<string, Tensor>,
  nodes: Node[],
  inputs: ValueInfo[],
): Tensor {
  const sub: Graph = {
    name: "bias-probe",
    nodes,
    inputs,
    outputs: [{ name: value }],
    initializers: view.graph.initializers,
    valueInfo: new Map(),
    opsets: view.graph.opsets,
  };
  sub.nodes = topologicalOrder(sub);
  return evaluateGraph(sub, feeds).get(value)!;
}

/** Reads bias[b,h,i,j] with numpy broadcasting against [B,N,Sq,Skv]. */
function reader(t: Tensor) {
  const dims = [...new Array<number>(4 - t.rank).fill(1), ...t.dims] as [number, number, number, number];
  const [d0, d1, d2, d3] = dims;
  const data = t.toFloat64();
  return {
    dims,
    at: (b: number, h: number, i: number, j: number) =>
      data[
        (((d0 === 1 ? 0 : b) * d1 + (d1 === 1 ? 0 : h)) * d2 + (d2 === 1 ? 0 : i)) * d3 + (d3 === 1 ? 0 : j)
      ]!,
  };
}

type Rule = (b: number, i: number, j: number) => boolean;

/** True when the bias is ~0 where `masked` is false and ≤ MASKED where it is true, at every position. */
function follows(t: Tensor, batch: number, masked: Rule): boolean {
  const r = reader(t);
  const [d0, d1, d2, d3] = r.dims;
  for (let b = 0; b < Math.max(d0, batch); b++)
    for (let h = 0; h < d1; h++)
      for (let i = 0; i < d2; i++)
        for (let j = 0; j < d3; j++) {
          const v = r.at(b, h, i, j);
          if (masked(b, i, j) ? !(v <= MASKED) : Math.abs(v) > 1e-6) return false;
        }
  return true;
}

/** Classifies the bias value by evaluating it on probe inputs (see BiasClass). */
export function classifyBias(
  view: GraphView,
  bias: string,
  fill?: { fillWhen: boolean; value: number },
): BiasClass {
  const c = cone(bias, view);
  if (!c) return { kind: "other", why: "the bias is computed by too many nodes to analyse" };
  const first = probe(view, bias, c, fill, new Map());
  if (!first.failed) return first.result;
  // A mask over past + current keys (KV-cache decoders) only evaluates when its sizes agree: total =
  // past + seq. Symbolic dims carry no such relation, so try each "one size is the sum of two others",
  // and accept a class only when two different sets of sizes under that relation both give it.
  const symbols = first.symbols;
  if (symbols.length > 6) return first.result;
  for (const sum of symbols)
    for (const [i, a] of symbols.entries())
      for (const b of symbols.slice(i + 1)) {
        if (a === sum || b === sum) continue;
        const classes = [0, 1].map((shift) => {
          const sizes = new Map(symbols.map((x, k) => [x, PROBE_SIZES[(k + shift) % PROBE_SIZES.length]!]));
          sizes.set(sum, sizes.get(a)! + sizes.get(b)!);
          return probe(view, bias, c, fill, sizes);
        });
        const [x, y] = classes.map((r) => r.result);
        if (!classes.some((r) => r.failed) && x!.kind !== "other" && JSON.stringify(x) === JSON.stringify(y))
          return x!;
      }
  return first.result;
}

/**
 * One probe of the bias cone with the given sizes for symbolic dims (others get fresh probe sizes):
 * the class, whether evaluating failed, and the symbols met (in order).
 */
function probe(
  view: GraphView,
  bias: string,
  c: Cone,
  fill: { fillWhen: boolean; value: number } | undefined,
  preset: Map<string, number>,
): { result: BiasClass; failed: boolean; symbols: string[] } {
  const sizes = new Map(preset);
  const symbols = () => [...sizes.keys()];
  const other = (why: string, failed = false) => ({
    result: { kind: "other", why } as BiasClass,
    failed,
    symbols: symbols(),
  });
  const dims = new Map<string, number[]>();
  for (const i of c.inputs) {
    const d = probeDims(i, sizes);
    if (!d || !i.dtype) return other(`graph input '${i.name}' has an unknown shape`);
    dims.set(i.name, d);
  }
  const leafDims = new Map(
    [...c.shapeLeaves].map(([name, shape]) => [name, probeDims({ name, shape }, sizes)!]),
  );
  const masks = c.inputs.filter((i) => dims.get(i.name)!.length === 2);
  // Every 2-D input (ids, masks) gets ones: valid token ids and all-valid masks; other inputs zeros.
  const run = (probed?: string) => {
    const feeds: Record<string, Tensor> = {};
    for (const [name, dims] of leafDims) feeds[name] = new Tensor("int64", dims, [dims.length]);
    for (const i of c.inputs) {
      const d = dims.get(i.name)!;
      const pattern =
        i.name === probed
          ? (k: number) => probeMask(Math.floor(k / d[1]!), k % d[1]!, d[1]!)
          : () => (d.length === 2 ? 1 : 0);
      feeds[i.name] = filled(i.dtype!, d, pattern);
    }
    const leafInputs = [...leafDims.keys()].map((name) => ({ name, dtype: "int64" as const }));
    const t = evaluate(view, bias, feeds, c.nodes, [...c.inputs, ...leafInputs]);
    return fill ? asFillBias(t, fill) : t;
  };
  const found = (result: BiasClass) => ({ result, failed: false, symbols: symbols() });
  try {
    const allOnes = run();
    if (allOnes.rank > 4) return other("the bias has more than 4 dimensions");
    const [, , sq, skv] = reader(allOnes).dims;
    const causal: Rule = (_b, i, j) => j > i + (skv - sq);
    const isCausal = sq > 1 && follows(allOnes, 1, causal);
    const isZero = follows(allOnes, 1, () => false);
    let maskFree = true;
    for (const m of masks) {
      const [batch, s] = dims.get(m.name) as [number, number];
      const probed = run(m.name);
      const padded: Rule = (b, _i, j) => probeMask(b, j, s) === 0;
      if (s === skv && s >= 3) {
        if (isZero && follows(probed, batch, padded)) return found({ kind: "padding", mask: m.name });
        if (isCausal && follows(probed, batch, (b, i, j) => padded(b, i, j) || causal(b, i, j)))
          return found({ kind: "causal+padding", mask: m.name });
      }
      if (!follows(probed, batch, isCausal ? causal : () => false)) maskFree = false;
    }
    if (isCausal && maskFree) return found({ kind: "causal" });
    return other("the bias is not a padding or causal mask");
  } catch (err) {
    return other(
      `the bias could not be evaluated (${err instanceof Error ? err.message : String(err)})`,
      true,
    );
  }
}

/** A masked fill Where(cond, fill, scores) acts like the additive bias Where(cond, fill, 0). */
function asFillBias(cond: Tensor, fill: { fillWhen: boolean; value: number }): Tensor {
  const data = new Float32Array(cond.size);
  for (let i = 0; i < data.length; i++)
    data[i] = (cond.getNumber(i) !== 0) === fill.fillWhen ? fill.value : 0;
  return new Tensor("float32", data, cond.dims);
}
