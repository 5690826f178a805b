import type { Graph } from "../../ir/graph.js";
import type { GraphView } from "../graph-view.js";
import type { Decline, Match, Replacement, Rule, RuleSet } from "../pattern.js";
import { floatAttr, intAttr, intsAttr, NodeFactory } from "../rewrite.js";
import { analyzeBlock, type BlockAnalysis } from "./analyze.js";
import { packProjectionWeights } from "./pack.js";
import { attentionRoot } from "./patterns.js";
import type { FusionPath } from "./report.js";

/** State shared by the rules of one fusion pass (analysis is done once per block, not once per rule). */
export class FusionContext {
  private readonly analyses = new Map<string, { factory: NodeFactory; result: BlockAnalysis | Decline }>();
  /** mask input → SeqLensFromMask output, shared by every packed block that reads the mask. */
  readonly seqLens = new Map<string, string>();
  readonly chosen = new Map<string, { path: FusionPath; analysis: BlockAnalysis }>();

  constructor(
    readonly view: GraphView,
    readonly graph: Graph,
  ) {}

  analyze(m: Match): { factory: NodeFactory; result: BlockAnalysis | Decline } {
    let a = this.analyses.get(m.root);
    if (!a) {
      const factory = new NodeFactory(this.graph, `mhafuse/${m.nodes.get("softmax")!.name}`);
      a = { factory, result: analyzeBlock(m, this.view, factory) };
      this.analyses.set(m.root, a);
    }
    return a;
  }
}

/**
 * Emits the last node of the fused computation ([B,Sq,N·Hv]) so that the block's original output value
 * is produced again: directly when the block ended in the usual head merge, else re-split to [B,N,Sq,Hv].
 */
function emitOutput(a: BlockAnalysis, f: NodeFactory, last: (output?: string) => string): void {
  const { value, merged } = a.output;
  if (merged) {
    last(value);
    return;
  }
  const split = f.add("Reshape", [last(), f.int64s([0, 0, a.q.numHeads, a.v.headSize])], {
    allowzero: intAttr(0),
  });
  f.add("Transpose", [split], { perm: intsAttr([0, 2, 1, 3]) }, { output: value });
}

function replacement(a: BlockAnalysis, f: NodeFactory): Replacement {
  // The cache Concats go too: the fused op produces their outputs (present key/value) itself.
  const remove = [a.output.replaces, ...(a.cache?.concats ?? [])];
  return { add: f.nodes, remove, initializers: f.initializers };
}

/**
 * Packed QKV: self-attention whose Q/K/V are projections of one input and whose only bias is a padding
 * mask from a graph input. The projections become one MatMul with the head-interleaved weight; the mask
 * becomes lengths at run time; rows that turn out not to be right-padded fall back to the original bias.
 */
const packedRule: Rule<FusionContext> = {
  name: "packed-qkv",
  pattern: attentionRoot,
  rewrite(m, ctx) {
    const { factory: base, result: a } = ctx.analyze(m);
    if ("decline" in a) return a;
    if (a.cache) return { decline: "a KV cache (past key/value) needs the general attention op" };
    const p = a.projections;
    if (!p) return { decline: "Q/K/V are not plain projections (MatMul + Add) split into heads" };
    if (p.q.input !== p.k.input || p.q.input !== p.v.input)
      return { decline: "Q, K and V project different inputs" };
    if (a.q.numHeads !== a.k.numHeads || a.v.headSize !== a.q.headSize)
      return { decline: "packed QKV needs equal Q/K/V head counts and sizes" };
    if (a.biasClass?.kind !== "padding")
      return { decline: "the bias is not a padding mask from a graph input" };
    const weights = [p.q, p.k, p.v].map((x) => ctx.view.constant(x.weight)!);
    const e = a.q.numHeads * a.q.headSize;
    if (weights.some((w) => w.type !== "float32" || w.dims[1] !== e || w.dims[0] !== weights[0]!.dims[0]))
      return { decline: "packed QKV needs float32 projection weights [E_in, N·H]" };
    const f = new NodeFactory(ctx.graph, `${base.fresh("packed")}`);
    const biases = [p.q, p.k, p.v].map((x) => (x.bias ? ctx.view.constant(x.bias) : undefined));
    // The packed op always scales by 1/√H; fold any other scale into the Q projection.
    const qFactor = a.chain.scale * Math.sqrt(a.q.headSize);
    const packed = packProjectionWeights(
      weights as [never, never, never],
      biases as [never, never, never],
      a.q.numHeads,
      qFactor,
    );
    const x = p.q.input;
    const proj = f.add("MatMul", [x, f.constant(packed.weight, "qkv_weight")]);
    const withBias = f.add("Add", [proj, f.constant(packed.bias, "qkv_bias")]);
    const tokenMajor = f.add("Transpose", [withBias], { perm: intsAttr([1, 0, 2]) });
    const qkv = f.add("Reshape", [tokenMajor, f.int64s([0, 0, 3 * e, 1, 1])], { allowzero: intAttr(0) });
    const mask = a.biasClass.mask;
    let lengths = ctx.seqLens.get(mask);
    if (!lengths) {
      lengths = f.add("SeqLensFromMask", [mask], {}, { domain: "mhafuse" });
      ctx.seqLens.set(mask, lengths);
    }
    const context = f.add(
      "QKVToContext",
      [qkv, lengths, a.bias!],
      {
        num_heads: intAttr(a.q.numHeads),
        hidden_size: intAttr(e),
        compute_padded_rows: intAttr(1),
      },
      { domain: "mhafuse" },
    );
    const flat = f.add("Reshape", [context, f.int64s([0, 0, e])], { allowzero: intAttr(0) });
    emitOutput(a, f, (output) => f.add("Transpose", [flat], { perm: intsAttr([1, 0, 2]) }, { output }));
    ctx.chosen.set(m.root, { path: "packed-qkv", analysis: a });
    return replacement(a, f);
  },
};

/** Everything else: the general fused op on [B,S,N·H] Q/K/V with bias, causal flag, GQA and a KV cache. */
const attentionRule: Rule<FusionContext> = {
  name: "attention",
  pattern: attentionRoot,
  rewrite(m, ctx) {
    const { factory: f, result: a } = ctx.analyze(m);
    if ("decline" in a) return a;
    const causalOnly = a.biasClass?.kind === "causal";
    const causal = causalOnly || a.biasClass?.kind === "causal+padding";
    const inputs = [a.q.value, a.k.value, a.v.value, a.bias && !causalOnly ? a.bias : ""];
    // Inputs 5 and 6: past_key, past_value (input 4, key_lengths, stays empty).
    if (a.cache) inputs.push("", a.cache.pastKey, a.cache.pastValue);
    while (inputs.at(-1) === "") inputs.pop();
    const more = a.cache ? [a.cache.presentKey, a.cache.presentValue] : [];
    const attrs = {
      num_heads: intAttr(a.q.numHeads),
      kv_num_heads: intAttr(a.k.numHeads),
      scale: floatAttr(a.chain.scale),
      causal: intAttr(causal ? 1 : 0),
    };
    emitOutput(a, f, (output) => f.add("Attention", inputs, attrs, { domain: "mhafuse", output, more }));
    ctx.chosen.set(m.root, { path: "attention", analysis: a });
    return replacement(a, f);
  },
};

/** The attention rule set: alternatives tried in order, the packed op first. */
export const attentionRules: RuleSet<FusionContext> = [packedRule, attentionRule];
