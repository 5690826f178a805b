import type { Attribute, Node } from "../../ir/graph.js";
import { Tensor } from "../../ir/tensor.js";
import type { GraphView } from "../graph-view.js";
import { any, isMatch, match, oneOf, op, type Pattern } from "../pattern.js";
import { intAttr, type NodeFactory } from "../rewrite.js";
import { type HeadInput, type Resolved, resolveHeads, resolveTokenMajorHeads } from "./heads.js";

/**
 * Rotary position embeddings as exporters write them (HF `apply_rotary_pos_emb`), on a per-head tensor
 * x [B,N,S,H]:
 *
 *   rotated = x·cos + rotate_half(x)·sin,   rotate_half(x) = Concat(−x[…, h:], x[…, :h]),  h = width/2
 *
 * or GPT-J's interleaved form, rotate_every_two(x) = stack((−x[…, 1::2], x[…, ::2]), −1).flatten(−2) with
 * cos/sin = repeat_interleave(angles, 2); and partial rotary (GPT-NeoX / Phi rotary_pct, GPT-J rotary_dim):
 * Concat(rotated(x[…, :d]), x[…, d:]) on the last axis.
 * cos/sin are [1,1,S,d], [1,S,d] or [S,d] (GPT-J, rotating [B,S,N,H]: [1,S,1,d], [S,1,d]): one row per
 * token, shared by the heads, or one set of rows per sequence with position_ids [B,S]. Their last axis must
 * provably repeat — equal halves (HF's Cos(Concat(freqs, freqs)), a constant cache) or equal neighbours
 * (repeat_interleave) — which is what lets one pair-wise rotation with d/2 angles replace them.
 *
 * A matched rotation becomes one com.microsoft RotaryEmbedding node on the [B,S,N·H] activation right
 * before the fused attention op. Why a node and not a `rotary` attribute of mhafuse.Attention: the
 * rotated K is what the KV cache stores (present_key), and Qwen3's per-head RMSNorm sits between the
 * projection and the rotation, so the rotation is a step of its own; com.microsoft RotaryEmbedding is
 * the op onnxruntime runs at every opset (ONNX RotaryEmbedding needs opset 23, the exports are 17), so
 * `optimize --target onnxruntime` keeps it as it is; and it has a float64 reference here already. The
 * cos/sin the export computes at run time (with whatever rope scaling it baked in) are kept: one angle of
 * each repeated pair becomes the op's cache, and the position ids index it (offset 0: row s is token s's
 * angles) — so no maximum position has to be guessed, as a constant cache would need.
 */

export interface RotaryMatch {
  /** The per-head [B,N,S,H] (GPT-J: [B,S,N,H]) tensor before rotation. */
  input: string;
  /** cos / sin as multiplied (broadcast against x), their last axis repeating as the form requires. */
  cos: string;
  sin: string;
  rotaryDim: number;
  headSize: number;
  /** Pairs (2j, 2j+1) (GPT-J's rotate_every_two) rather than (j, j + d/2). */
  interleaved: boolean;
  /** Rank of cos/sin (2, 3 or 4) and whether they hold one set of rows per sequence ([B,…,S,d], B ≠ 1). */
  rank: number;
  perBatch: boolean;
  nodes: Node[];
}

function constInts(view: GraphView, value: string | undefined): number[] | undefined {
  if (!value) return undefined;
  const t = view.constant(value);
  return t && t.rank <= 1 && (t.type === "int64" || t.type === "int32") ? t.toNumbers() : undefined;
}

/** A constant Slice of one axis: [start, end) by `step` on `axis` (negative axis normalised with `rank`). */
function sliceOf(node: Node, view: GraphView, rank: number) {
  const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => constInts(view, node.inputs[i]));
  if (starts?.length !== 1 || ends?.length !== 1) return undefined;
  if (steps && steps.length !== 1) return undefined;
  const a = axes ? axes[0]! : 0;
  if (axes && axes.length !== 1) return undefined;
  return { start: starts[0]!, end: ends[0]!, axis: a < 0 ? a + rank : a, step: steps ? steps[0]! : 1 };
}

function lastDim(view: GraphView, value: string): number | undefined {
  const d = view.typeOf(value)?.shape?.at(-1);
  return typeof d === "number" ? d : undefined;
}

/** Slice(x, [from, to)) on the last axis of a rank-4 value; `to` ≥ the axis length means "to the end". */
function lastAxisSlice(from: number | "half", to: number | "half" | "end", capture?: string): Pattern {
  return op("Slice", [any("x")], {
    capture,
    label: `Slice [${from}, ${to}) of the head axis`,
    check: (node, view, bound) => {
      const width = lastDim(view, bound.values.get("x") ?? node.inputs[0]!);
      const s = sliceOf(node, view, 4);
      if (s?.axis !== 3 || s.step !== 1 || width === undefined)
        return "not a constant slice of the last axis";
      const at = (v: number | "half") => (v === "half" ? width / 2 : v);
      const endOk = to === "end" ? s.end >= width : s.end === at(to);
      return s.start === at(from) && endOk ? true : `slice [${s.start}, ${s.end}) of ${width}`;
    },
  });
}

const lastAxisConcat = (inputs: Pattern[], capture?: string): Pattern =>
  op("Concat", inputs, {
    capture,
    check: (node, view) => {
      const a = node.attrs.axis;
      const rank = view.typeOf(node.outputs[0]!)?.shape?.length ?? 4;
      const axis = a?.type === "int" ? (a.value < 0 ? a.value + rank : a.value) : undefined;
      return axis === rank - 1 ? true : "Concat is not on the last axis";
    },
  });

/** rotate_half(x) = Concat(−x[…, h:], x[…, :h]). */
const rotateHalf = lastAxisConcat([op("Neg", [lastAxisSlice("half", "end")]), lastAxisSlice(0, "half")]);

/** x[…, start::2] of a rank-4 value (the even or the odd elements of each head). */
function everyOther(start: 0 | 1): Pattern {
  return op("Slice", [any("x")], {
    label: `Slice [${start}::2] of the head axis`,
    check: (node, view) => {
      const width = lastDim(view, node.inputs[0]!);
      const s = sliceOf(node, view, 4);
      const ok = s?.axis === 3 && s.step === 2 && s.start === start && width !== undefined && s.end >= width;
      return ok ? true : "not x[…, start::2]";
    },
  });
}

const trailingUnsqueeze = (inner: Pattern): Pattern =>
  op("Unsqueeze", [inner], {
    check: (node, view) => {
      const rank = view.typeOf(node.outputs[0]!)?.shape?.length;
      const a = node.attrs.axes;
      const axes = a?.type === "ints" ? a.value : constInts(view, node.inputs[1]);
      return rank !== undefined && axes?.length === 1 && (axes[0]! + rank) % rank === rank - 1
        ? true
        : "Unsqueeze does not add a trailing axis";
    },
  });

/**
 * GPT-J's rotate_every_two(x) = stack((−x[…, 1::2], x[…, ::2]), −1).flatten(−2): Unsqueeze both, Concat on
 * the new axis, Reshape back to the head width (the interleaved form: pairs (2j, 2j+1)).
 */
const rotateEveryTwo = op(
  "Reshape",
  [lastAxisConcat([trailingUnsqueeze(op("Neg", [everyOther(1)])), trailingUnsqueeze(everyOther(0))])],
  {
    capture: "interleaved",
    check: (node, view) => {
      const inner = view.typeOf(node.inputs[0]!)?.shape;
      const out = view.typeOf(node.outputs[0]!)?.shape;
      const d = inner?.at(-2);
      return out?.length === 4 && typeof d === "number" && out[3] === 2 * d
        ? true
        : "Reshape does not merge the pairs back into the head axis";
    },
  },
);

/** x·cos + rotate(x)·sin; the rotate product first, so that x is bound before x·cos is seen. */
const rotation: Pattern = op(
  "Add",
  [
    op("Mul", [oneOf("rotate_half or rotate_every_two", rotateHalf, rotateEveryTwo), any("sin")], {
      commutative: true,
    }),
    op("Mul", [any("x"), any("cos")], { commutative: true }),
  ],
  { commutative: true, label: "rotary x·cos + rotate(x)·sin" },
);

/** Ops through which "the last axis repeats itself" carries over from input 0. */
const REPEAT_PRESERVING = new Set(["Cast", "Identity", "Cos", "Sin", "Neg", "Unsqueeze", "Expand"]);

/**
 * How cos/sin repeat along their last axis, which is what makes them d/2 angles of a pair-wise rotation:
 * "halves" — equal halves (HF's Concat(freqs, freqs), rotate-half); "pairs" — equal neighbours 2j, 2j+1
 * (GPT-J's repeat_interleave(·, 2), interleaved).
 */
export type Repeat = "halves" | "pairs";

function constantRepeats(t: Tensor, mode: Repeat): boolean {
  const width = t.dims.at(-1) ?? 0;
  if (width % 2 !== 0 || t.size === 0) return false;
  const data = t.toFloat64();
  const half = width / 2;
  for (let r = 0; r < data.length; r += width)
    for (let j = 0; j < half; j++) {
      const [a, b] = mode === "halves" ? [r + j, r + j + half] : [r + 2 * j, r + 2 * j + 1];
      if (data[a] !== data[b]) return false;
    }
  return true;
}

/** repeat_interleave(a, 2, last axis) as exported: Reshape(Expand|Tile(Unsqueeze(a, trailing)) [… d/2, 2]). */
function isRepeatInterleave(node: Node, view: GraphView): boolean {
  if (node.opType !== "Reshape") return false;
  const rep = view.producer.get(node.inputs[0]!);
  if (!rep || (rep.opType !== "Expand" && rep.opType !== "Tile")) return false;
  const unsq = view.producer.get(rep.inputs[0]!);
  if (unsq?.opType !== "Unsqueeze") return false;
  const repShape = view.typeOf(rep.outputs[0]!)?.shape;
  const half = lastDim(view, unsq.inputs[0]!);
  const unsqShape = view.typeOf(unsq.outputs[0]!)?.shape;
  return (
    unsqShape?.at(-1) === 1 &&
    unsqShape.at(-2) === half &&
    repShape?.at(-1) === 2 &&
    repShape.at(-2) === half &&
    lastDim(view, node.outputs[0]!) === 2 * (half ?? Number.NaN)
  );
}

/** Does `value` provably repeat along its last axis as `mode` says (structurally, or as a constant)? */
export function repeatsAlongLastAxis(value: string, view: GraphView, mode: Repeat, depth = 0): boolean {
  const t = view.constant(value);
  if (t) return constantRepeats(t, mode);
  const node = view.producer.get(value);
  if (node?.domain !== "" || depth > 12) return false;
  const rank = view.typeOf(value)?.shape?.length;
  const next = (v: string) => repeatsAlongLastAxis(v, view, mode, depth + 1);
  if (node.opType === "Concat" && mode === "halves") {
    const ins = node.inputs.filter((i) => i);
    const a = node.attrs.axis;
    const axis = a?.type === "int" && rank !== undefined ? (a.value + rank) % rank : undefined;
    return ins.length === 2 && ins[0] === ins[1] && axis === (rank ?? 0) - 1;
  }
  if (mode === "pairs" && isRepeatInterleave(node, view)) return true;
  if (REPEAT_PRESERVING.has(node.opType)) {
    // Unsqueeze/Expand must keep a known last axis (matchRotary checks its width against the rotary dim).
    if ((node.opType === "Unsqueeze" || node.opType === "Expand") && lastDim(view, value) === undefined)
      return false;
    return next(node.inputs[0]!);
  }
  if (["Mul", "Div", "Add", "Sub"].includes(node.opType)) {
    // By a scalar constant (attention_scaling): the repetition stays.
    const [a, b] = node.inputs as [string, string];
    if (view.constant(b)?.size === 1) return next(a);
    if (node.opType === "Mul" && view.constant(a)?.size === 1) return next(b);
  }
  if (node.opType === "Gather" || node.opType === "Slice") {
    // Row selection (cos_cached[position_ids], cos_cached[:seq]) on an axis other than the last.
    const data = node.inputs[0]!;
    const dataRank = view.typeOf(data)?.shape?.length;
    if (dataRank === undefined) return false;
    if (node.opType === "Gather") {
      const a = node.attrs.axis;
      const axis = a?.type === "int" ? (a.value + dataRank) % dataRank : 0;
      if (axis === dataRank - 1) return false;
    } else {
      const axes = constInts(view, node.inputs[3]);
      if (!axes || axes.some((x) => (x + dataRank) % dataRank === dataRank - 1)) return false;
    }
    return next(data);
  }
  return false;
}

/**
 * The rotation of a per-head value, if it is one: undefined when `value` is not a rotary subgraph at all,
 * a decline when it is one this pass cannot fold (kept as graph nodes, and the report says why).
 */
export function matchRotary(
  value: string,
  view: GraphView,
  layout: "bnsh" | "bsnh" = "bnsh",
): Resolved<RotaryMatch> | undefined {
  // GPT-J rotates [B,S,N,H] before the head transpose; everyone else [B,N,S,H] after it.
  const [seqAxis, headAxis] = layout === "bnsh" ? [2, 1] : [1, 2];
  const headSize = lastDim(view, value);
  let rotatedValue = value;
  let input: string | undefined;
  let tail: { start: number; end: number } | undefined;
  const extra: Node[] = [];
  const wrap = view.producer.get(value);
  if (wrap?.opType === "Concat" && wrap.inputs.length === 2) {
    // Partial rotary: Concat(rotation(x[…, :d]), x[…, d:]).
    const pass = view.producer.get(wrap.inputs[1]!);
    const head = pass?.opType === "Slice" ? pass.inputs[0]! : undefined;
    const s = pass && head ? sliceOf(pass, view, 4) : undefined;
    if (head && s && s.axis === 3 && s.step === 1 && isMatch(match(rotation, wrap.inputs[0]!, view))) {
      rotatedValue = wrap.inputs[0]!;
      input = head;
      tail = s;
      extra.push(wrap, pass!);
    }
  }
  const m = match(rotation, rotatedValue, view);
  if (!isMatch(m)) return undefined;
  const x = m.values.get("x")!;
  const rotaryDim = lastDim(view, x) ?? lastDim(view, m.values.get("cos")!);
  if (input !== undefined) {
    // The rotated part must be x[…, :d] of the same head tensor whose tail passes through.
    const lower = view.producer.get(x);
    const s = lower?.opType === "Slice" ? sliceOf(lower, view, 4) : undefined;
    const width = lastDim(view, input);
    const leading = s?.axis === 3 && s.step === 1 && s.start === 0 && s.end === rotaryDim;
    const rest = tail !== undefined && tail.start === rotaryDim && width !== undefined && tail.end >= width;
    if (!leading || !rest || lower!.inputs[0] !== input)
      return { decline: "partial rotary that is not Concat(rotated x[…, :d], x[…, d:]) of one head tensor" };
    extra.push(lower!);
  } else {
    input = x;
  }
  const fullWidth = lastDim(view, input) ?? headSize;
  if (rotaryDim === undefined || fullWidth === undefined || rotaryDim % 2 !== 0 || rotaryDim > fullWidth)
    return { decline: "rotary with an unknown or odd rotary dimension" };
  const [cos, sin] = [m.values.get("cos")!, m.values.get("sin")!];
  const interleaved = m.nodes.has("interleaved");
  for (const c of [cos, sin]) {
    if (!repeatsAlongLastAxis(c, view, interleaved ? "pairs" : "halves"))
      return {
        decline: interleaved
          ? `rotary cos/sin '${c}' does not provably repeat each angle twice (interleaved form)`
          : `rotary cos/sin '${c}' does not provably repeat its first half (rotate-half form)`,
      };
    // cos/sin broadcast against the rank-4 x: one row of angles per token (on x's sequence axis), the same
    // for every head (1 on x's head axis); x's batch axis may hold per-sequence rows (position_ids [B,S]).
    const shape = view.typeOf(c)?.shape;
    if (!shape || shape.length < 2 || shape.length > 4)
      return { decline: `rotary cos/sin '${c}' has an unknown shape or rank` };
    if (shape.at(-1) !== rotaryDim) return { decline: `rotary cos/sin '${c}' is not ${rotaryDim} wide` };
    const lead = 4 - shape.length;
    for (let i = 0; i < shape.length - 1; i++) {
      const xAxis = i + lead;
      if (xAxis === headAxis && shape[i] !== 1)
        return { decline: `rotary cos/sin '${c}' of shape [${shape}] differs per head` };
    }
    const rows = shape[seqAxis - lead];
    const seq = view.typeOf(input)?.shape?.[seqAxis];
    if (seqAxis - lead < 0 || (rows === 1 && seq !== 1))
      return { decline: `rotary cos/sin '${c}' of shape [${shape}] does not hold one row per token` };
  }
  const shape = view.typeOf(cos)!.shape!;
  const sinShape = view.typeOf(sin)!.shape!;
  if (shape.join() !== sinShape.join()) return { decline: "rotary cos and sin have different shapes" };
  // Only a rank-4 cos/sin reaches x's batch axis.
  const perBatch = shape.length === 4 && shape[0] !== 1;
  const nodes = [...extra, ...m.matched];
  return {
    input,
    cos,
    sin,
    rotaryDim,
    headSize: fullWidth,
    interleaved,
    rank: shape.length,
    perBatch,
    nodes,
  };
}

/**
 * Emits com.microsoft RotaryEmbedding on the [B,S,N·H] activation `x`. The cache rows hold one angle of
 * each repeated pair of the export's own cos/sin: one row per token, position ids = offset 0; with
 * per-sequence angles ([B,S,d]) the rows of all sequences are stacked and sequence b's token s reads row
 * b·S + s. `prepared` memoises the caches and position ids of one block (Q and K share them).
 */
export function emitRotary(
  x: HeadInput,
  r: RotaryMatch,
  f: NodeFactory,
  prepared: Map<string, string>,
): string {
  const half = r.rotaryDim / 2;
  const memo = (key: string, make: () => string) => {
    let v = prepared.get(key);
    if (!v) prepared.set(key, (v = make()));
    return v;
  };
  const reshape = (v: string, shape: number[]) =>
    f.add("Reshape", [v, f.int64s(shape)], { allowzero: intAttr(0) });
  const shapeOf = (v: string, from: number, to: number) =>
    f.add("Slice", [f.add("Shape", [v]), f.int64s([from]), f.int64s([to]), f.int64s([0])]);
  const cache = (c: string) =>
    memo(`cache:${c}:${r.rotaryDim}:${r.interleaved}:${r.perBatch}`, () => {
      let rows = c;
      if (r.perBatch) {
        // [B,1,S,d] → [B,S,d], broadcast to x's batch (a batch-1 cos at run time reads the same rows).
        if (r.rank === 4) rows = reshape(rows, [0, -1, r.rotaryDim]);
        const target = f.add("Concat", [shapeOf(x.value, 0, 1), f.int64s([1, 1])], { axis: intAttr(0) });
        rows = f.add("Expand", [rows, target]);
      }
      // One angle of each repeated pair: the first half, or every other entry when interleaved.
      const angles = r.interleaved
        ? f.add("Slice", [rows, f.int64s([0]), f.int64s([r.rotaryDim]), f.int64s([-1]), f.int64s([2])])
        : f.add("Slice", [rows, f.int64s([0]), f.int64s([half]), f.int64s([-1])]);
      return reshape(angles, [-1, half]);
    });
  // Keyed by cos: Q and K that share their angles share their token count too.
  const positions = memo(`positions:${r.cos}:${r.perBatch}`, () => {
    if (!r.perBatch) return f.constant(new Tensor("int64", [0], [1]), "rotary_offset");
    const rows = f.add("Gather", [f.add("Shape", [cache(r.cos)]), f.constant(new Tensor("int64", [0], []))], {
      axis: intAttr(0),
    });
    const zero = f.constant(new Tensor("int64", [0], []));
    const one = f.constant(new Tensor("int64", [1], []));
    return f.add("Reshape", [f.add("Range", [zero, rows, one]), shapeOf(x.value, 0, 2)]);
  });
  const attrs: Record<string, Attribute> = {
    num_heads: intAttr(x.numHeads),
    interleaved: intAttr(r.interleaved ? 1 : 0),
  };
  if (r.rotaryDim < x.headSize) attrs.rotary_embedding_dim = intAttr(r.rotaryDim);
  const inputs = [x.value, positions, cache(r.cos), cache(r.sin)];
  return f.add("RotaryEmbedding", inputs, attrs, { domain: "com.microsoft" });
}

/** What became of the rotary embeddings of one block, for the report. */
export interface RotaryOutcome {
  folded: { what: string; rotaryDim: number; headSize: number }[];
  kept: string[];
}

const isHeadTranspose = (n: Node | undefined): n is Node => {
  const p = n?.opType === "Transpose" ? n.attrs.perm : undefined;
  return p?.type === "ints" && p.value.join() === "0,2,1,3";
};

/**
 * Resolves the per-head Q/K values of one block to [B,S,N·H], folding a rotary embedding on them into
 * a RotaryEmbedding node where one is matched (caches shared by Q and K), and records what it did.
 */
export class RotaryFolding {
  private readonly prepared = new Map<string, string>();
  private readonly folded: RotaryOutcome["folded"] = [];
  private readonly kept: string[] = [];

  constructor(
    private readonly view: GraphView,
    private readonly f: NodeFactory,
  ) {}

  resolve(value: string, what: string): Resolved<HeadInput> {
    const { view, f } = this;
    let r = matchRotary(value, view);
    let resolveInput = (x: string) => resolveHeads(x, view, f, what);
    const t = view.producer.get(value);
    if (!r && isHeadTranspose(t)) {
      // GPT-J: the rotation is on [B,S,N,H], before the head transpose.
      r = matchRotary(t.inputs[0]!, view, "bsnh");
      resolveInput = (x) => {
        const inner = resolveTokenMajorHeads(x, view, f, what);
        return "decline" in inner ? inner : { ...inner, nodes: [t, ...inner.nodes] };
      };
    }
    if (!r || "decline" in r) {
      if (r) this.kept.push(`${what}: ${r.decline}`);
      return resolveHeads(value, view, f, what);
    }
    const inner = resolveInput(r.input);
    if ("decline" in inner) {
      // The rotated value may still resolve (its shape can be known where the input's is not).
      this.kept.push(`${what}: ${inner.decline}`);
      return resolveHeads(value, view, f, what);
    }
    this.folded.push({ what, rotaryDim: r.rotaryDim, headSize: inner.headSize });
    const rotated = emitRotary(inner, r, f, this.prepared);
    return { ...inner, value: rotated, nodes: [...inner.nodes, ...r.nodes], plain: undefined };
  }

  /** Undefined when the block has no rotary embedding. */
  outcome(): RotaryOutcome | undefined {
    return this.folded.length || this.kept.length ? { folded: this.folded, kept: this.kept } : undefined;
  }
}
