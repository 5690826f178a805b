import type { Node } from "../../ir/graph.js";
import { Tensor } from "../../ir/tensor.js";
import type { GraphView } from "../graph-view.js";
import type { Match } from "../pattern.js";
import type { NodeFactory } from "../rewrite.js";
import { type FusedQkv, fusedLayoutAbove, interleavedQkv, splitQkv } from "./fused-projection.js";
import {
  findProjection,
  type HeadInput,
  type KvCache,
  kvCache,
  type Projection,
  peelKeyRepeat,
  peelKvRepeat,
  resolveHeads,
  resolveKeyHeads,
  shapeValue,
  untransposeKey,
} from "./heads.js";
import { type BiasClass, classifyBias } from "./mask-probe.js";
import type { AttentionKind, AttentionTrait } from "./report.js";
import { RotaryFolding, type RotaryOutcome } from "./rotary.js";
import { type ScoreChain, walkScoreChain } from "./score-chain.js";

/** Everything the rewrites need to know about one matched attention block. */
export interface BlockAnalysis {
  match: Match;
  chain: ScoreChain;
  q: HeadInput;
  k: HeadInput;
  v: HeadInput;
  /** The KV cache (past inputs, present outputs), when K and V are cache Concats. */
  cache?: KvCache;
  /** Rotary embeddings on Q/K: folded into RotaryEmbedding nodes, or kept as graph nodes and why. */
  rotary?: RotaryOutcome;
  /** Combined additive bias (emitted into the factory when it needed new nodes), or undefined. */
  bias?: string;
  biasClass?: BiasClass;
  kind: AttentionKind;
  traits: AttentionTrait[];
  /** Value the fused op must produce and how: directly as [B,Sq,N·Hv], or re-split to [B,N,Sq,Hv]. */
  output: { value: string; merged: boolean; replaces: Node; nodes: Node[] };
  /** Original nodes of the block, for the report. */
  nodes: Node[];
  /** Q/K/V projections of the same input (candidates for the packed path). */
  projections?: { q: Projection; k: Projection; v: Projection };
  /** Q/K/V sliced from one fused projection, exactly (the packed path can use it). */
  fusedQkv?: FusedQkv;
  /** The fused projection's layout, also when something (rotary, a norm) sits between it and Q. */
  qkvLayout?: FusedQkv["layout"];
}

const samePerm = (n: Node, perm: number[]) => {
  const p = n.attrs.perm;
  return p?.type === "ints" && p.value.length === perm.length && p.value.every((x, i) => x === perm[i]);
};

/** context [B,N,Sq,Hv] → Transpose(0,2,1,3) → Reshape([B,Sq,N·Hv]): the usual head merge, undone by the fused op. */
function findOutput(context: Node, view: GraphView, n: number, hv: number): BlockAnalysis["output"] {
  const ctx = context.outputs[0]!;
  const direct = { value: ctx, merged: false, replaces: context, nodes: [] };
  if (view.useCount(ctx) !== 1) return direct;
  const t = view.readers.get(ctx)![0]!;
  if (t.opType !== "Transpose" || !samePerm(t, [0, 2, 1, 3]) || view.useCount(t.outputs[0]!) !== 1)
    return direct;
  const r = view.readers.get(t.outputs[0]!)![0]!;
  if (r.opType !== "Reshape") return direct;
  const target = shapeValue(r.inputs[1]!, view);
  if (target?.length !== 3) return direct;
  const last = target[2];
  if (!(last === n * hv || last === -1)) return direct;
  if (typeof target[0] === "number" && target[0] !== 0 && target[0] !== -1) return direct;
  if (typeof target[1] === "number" && target[1] !== 0 && target[1] !== -1) return direct;
  if (last === -1 && (target[0] === -1 || target[1] === -1)) return direct;
  return { value: r.outputs[0]!, merged: true, replaces: r, nodes: [t, r] };
}

function scalarLike(f: NodeFactory, v: number): string {
  return f.constant(new Tensor("float32", [v], []), "scalar");
}

/** Sums the bias terms into one additive bias value, emitting Mul/Where/Add nodes where needed. */
function combineBias(chain: ScoreChain, view: GraphView, f: NodeFactory): string | undefined {
  const parts: string[] = [];
  for (const term of chain.biases) {
    let v: string;
    if (term.kind === "add") v = term.value;
    else {
      const fill = view.constant(term.fill)!.getNumber(0);
      const zero = scalarLike(f, 0);
      const filler = scalarLike(f, fill);
      v = f.add("Where", term.fillWhen ? [term.cond, filler, zero] : [term.cond, zero, filler]);
    }
    if (term.multiplier !== 1) v = f.add("Mul", [v, scalarLike(f, term.multiplier)]);
    parts.push(v);
  }
  if (parts.length === 0) return undefined;
  return parts.reduce((acc, p) => f.add("Add", [acc, p]));
}

function hasRotary(value: string, view: GraphView): boolean {
  const stack: [string, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    const node = view.producer.get(v);
    if (!node || d > 10) continue;
    if (["RotaryEmbedding", "Sin", "Cos", "Neg"].includes(node.opType)) return true;
    if (node.opType === "MatMul") continue;
    for (const i of node.inputs) stack.push([i, d + 1]);
  }
  return false;
}

function sameSequence(q: string, kT: string, view: GraphView): boolean | undefined {
  const qs = view.typeOf(q)?.shape;
  const ks = view.typeOf(kT)?.shape;
  if (!qs || !ks || qs.length !== 4 || ks.length !== 4) return undefined;
  const a = qs[2];
  const b = ks[3];
  if (a === null || a === undefined || b === null || b === undefined) return undefined;
  return a === b;
}

/**
 * Classifies each bias term by probing; padding and causal terms combine into one mask class, anything
 * else makes the whole bias "other" (kept as an additive input either way).
 */
function classifyTerms(chain: ScoreChain, view: GraphView): BiasClass | undefined {
  if (chain.biases.length === 0) return undefined;
  const classes = chain.biases.map((term) => {
    if (term.kind === "add") return classifyBias(view, term.value);
    const value = view.constant(term.fill)!.getNumber(0);
    return classifyBias(view, term.cond, { fillWhen: term.fillWhen, value });
  });
  if (classes.length === 1) return classes[0];
  const other = classes.find((c) => c.kind === "other");
  if (other) return other;
  const mask = classes.find((c) => c.kind === "padding" || c.kind === "causal+padding");
  const causal = classes.some((c) => c.kind === "causal" || c.kind === "causal+padding");
  if (mask && "mask" in mask) return causal ? { kind: "causal+padding", mask: mask.mask } : mask;
  return causal ? { kind: "causal" } : { kind: "other", why: "several bias terms" };
}

/** Q/K/V from one fused projection: the split form on the [B,S,E] values, else the head-interleaved form. */
function findFusedQkv(
  chain: ScoreChain,
  q: HeadInput,
  k: HeadInput,
  v: HeadInput,
  v4: string,
  view: GraphView,
  repeated: boolean,
): FusedQkv | undefined {
  if (q.plain && k.plain && v.plain)
    return splitQkv(q.plain, k.plain, v.plain, view, q.numHeads * q.headSize);
  if (repeated) return undefined;
  const t = view.producer.get(chain.kT);
  const perm = t?.attrs.perm;
  if (t?.opType !== "Transpose" || perm?.type !== "ints" || perm.value.join() !== "0,1,3,2") return undefined;
  return interleavedQkv(chain.q, t.inputs[0]!, v4, view, q.numHeads, q.headSize);
}

/** Analyses a matched block; declines (with the reason for the report) when it is not fusable. */
export function analyzeBlock(m: Match, view: GraphView, f: NodeFactory): BlockAnalysis | { decline: string } {
  const softmax = m.nodes.get("softmax")!;
  const context = m.nodes.get("context")!;
  const rank = view.typeOf(softmax.inputs[0]!)?.shape?.length;
  if (rank !== undefined && rank !== 4) {
    return {
      decline: `scores of Softmax '${softmax.name}' are rank ${rank}, fused attention needs [B,N,Sq,Skv]`,
    };
  }
  const chain = walkScoreChain(m.values.get("scores")!, view);
  if ("decline" in chain) return chain;

  // Q and K per head, with a rotary embedding on them folded into one RotaryEmbedding node each.
  const rotary = new RotaryFolding(view, f);
  const perHead = (value: string, what: string) => rotary.resolve(value, what);
  const q = perHead(chain.q, "Q");
  if ("decline" in q) return q;
  // K and V as per-head [B,Nkv,S,H] tensors: GQA repeats peeled, then the KV-cache Concat (if any).
  const kRepeat = peelKeyRepeat(chain.kT, view);
  const kPlain = kRepeat ? undefined : untransposeKey(chain.kT, view);
  const kBnsh = kRepeat?.value ?? kPlain?.value;
  const v4 = m.values.get("v")!;
  const vRepeat = peelKvRepeat(v4, view);
  const vBnsh = vRepeat ? vRepeat.value : v4;
  const { k: kc, v: vc, cache } = kvCache(kBnsh, vBnsh, view);
  const k = kBnsh ? perHead(kc ?? kBnsh, "K") : resolveKeyHeads(chain.kT, view, f);
  if ("decline" in k) return k;
  const v = resolveHeads(vc ?? vBnsh, view, f, "V");
  if ("decline" in v) return v;
  if (q.headSize !== k.headSize)
    return { decline: `Q head size ${q.headSize} differs from K head size ${k.headSize}` };
  if (k.numHeads !== v.numHeads) return { decline: `K has ${k.numHeads} heads but V has ${v.numHeads}` };
  if (q.numHeads % k.numHeads !== 0) {
    return { decline: `${q.numHeads} query heads are not a multiple of ${k.numHeads} key/value heads` };
  }

  const bias = combineBias(chain, view, f);
  const biasClass = classifyTerms(chain, view);
  const traits: AttentionTrait[] = [];
  if (q.numHeads !== k.numHeads) traits.push("GQA");
  if (biasClass?.kind === "other") traits.push("biased");
  if (biasClass?.kind === "padding" || biasClass?.kind === "causal+padding") traits.push("padding-mask");
  if (!q.plain && hasRotary(chain.q, view)) traits.push("rotary");
  if (cache) traits.push("kv-cache");

  const projections = (() => {
    if (!q.plain || !k.plain || !v.plain) return undefined;
    const [pq, pk, pv] = [q.plain, k.plain, v.plain].map((x) => findProjection(x, view));
    return pq && pk && pv ? { q: pq, k: pk, v: pv } : undefined;
  })();
  const fusedQkv = projections ? undefined : findFusedQkv(chain, q, k, v, v4, view, !!(kRepeat || vRepeat));
  const qkvLayout =
    fusedQkv?.layout ??
    (projections ? undefined : fusedLayoutAbove(chain.q, view, q.numHeads * q.headSize, q.headSize));
  if (qkvLayout) traits.push(qkvLayout === "split" ? "fused-qkv" : "interleaved-qkv");
  const isCausal = biasClass?.kind === "causal" || biasClass?.kind === "causal+padding";
  let kind: AttentionKind;
  if (projections) kind = projections.q.input === projections.k.input ? "self" : "cross";
  else if (qkvLayout) kind = "self";
  else kind = sameSequence(chain.q, chain.kT, view) === false ? "cross" : "self";
  if (kind === "self" && isCausal) kind = "causal";

  const output = findOutput(context, view, q.numHeads, v.headSize);
  const nodes = [
    ...new Set([...m.matched, ...chain.nodes, ...q.nodes, ...k.nodes, ...v.nodes, ...output.nodes]),
  ];
  for (const extra of [kRepeat?.nodes, kPlain?.nodes, vRepeat?.nodes, cache?.concats])
    for (const n of extra ?? []) if (!nodes.includes(n)) nodes.push(n);
  return {
    match: m,
    chain,
    q,
    k,
    v,
    cache,
    rotary: rotary.outcome(),
    bias,
    biasClass,
    kind,
    traits,
    output,
    nodes,
    projections,
    fusedQkv,
    qkvLayout,
  };
}
