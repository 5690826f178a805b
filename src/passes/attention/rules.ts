import type { Graph } from "../../ir/graph.js";
import type { Tensor } from "../../ir/tensor.js";
import type { GraphView } from "../graph-view.js";
import type { Decline, Match, Replacement, Rule, RuleSet } from "../pattern.js";
import { floatAttr, intAttr, intsAttr, NodeFactory } from "../rewrite.js";
import { tensorToFloat16 } from "../to-float16.js";
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
  /** Why the packed op declined a block (the report says why a block took the general op). */
  readonly packedDeclined = new Map<string, string>();

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
  return { add: f.nodes, remove: [a.output.replaces], initializers: f.initializers };
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
    const r = packedRewrite(m, ctx);
    if ("decline" in r) ctx.packedDeclined.set(m.root, r.decline);
    return r;
  },
};

function packedRewrite(m: Match, ctx: FusionContext): Replacement | Decline {
  {
    const { factory: base, result: a } = ctx.analyze(m);
    if ("decline" in a) return a;
    const p = a.projections;
    if (!p) return { decline: "Q/K/V are not plain projections (MatMul + Add) split into heads" };
    if (p.q.input !== p.k.input || p.q.input !== p.v.input)
      return { decline: "Q, K and V project different inputs" };
    if (a.q.numHeads !== a.k.numHeads || a.v.headSize !== a.q.headSize)
      return { decline: "packed QKV needs equal Q/K/V head counts and sizes" };
    const biasClass = a.biasClass;
    if (biasClass?.kind === "causal" || biasClass?.kind === "causal+padding")
      return { decline: "causal: the packed op (TensorRT bertQKVToContext semantics) has no causal mask" };
    if (biasClass?.kind !== "padding")
      return { decline: "the bias is not a padding mask from a graph input" };
    const weights = [p.q, p.k, p.v].map((x) => ctx.view.constant(x.weight)!);
    const e = a.q.numHeads * a.q.headSize;
    const dtype = weights[0]!.type;
    if (dtype !== "float32" && dtype !== "float16")
      return { decline: `packed QKV needs float32 or float16 projection weights, got ${dtype}` };
    if (weights.some((w) => w.type !== dtype || w.dims[1] !== e || w.dims[0] !== weights[0]!.dims[0]))
      return { decline: "packed QKV needs Q/K/V projection weights [E_in, N·H] of one dtype" };
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
    // Packing is a permutation (times the folded scale): a float16 model gets its packed weights in float16.
    const asModel = (t: Tensor) => (dtype === "float16" ? tensorToFloat16(t) : t);
    const x = p.q.input;
    const proj = f.add("MatMul", [x, f.constant(asModel(packed.weight), "qkv_weight")]);
    const withBias = f.add("Add", [proj, f.constant(asModel(packed.bias), "qkv_bias")]);
    const tokenMajor = f.add("Transpose", [withBias], { perm: intsAttr([1, 0, 2]) });
    const qkv = f.add("Reshape", [tokenMajor, f.int64s([0, 0, 3 * e, 1, 1])], { allowzero: intAttr(0) });
    const mask = biasClass.mask;
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
  }
}

/** Everything else: the general fused op on [B,S,N·H] Q/K/V with bias, causal flag and GQA. */
const attentionRule: Rule<FusionContext> = {
  name: "attention",
  pattern: attentionRoot,
  rewrite(m, ctx) {
    const { factory: f, result: a } = ctx.analyze(m);
    if ("decline" in a) return a;
    const causalOnly = a.biasClass?.kind === "causal";
    const causal = causalOnly || a.biasClass?.kind === "causal+padding";
    const inputs = [a.q.value, a.k.value, a.v.value];
    if (a.bias && !causalOnly) inputs.push(a.bias);
    const attrs = {
      num_heads: intAttr(a.q.numHeads),
      kv_num_heads: intAttr(a.k.numHeads),
      scale: floatAttr(a.chain.scale),
      causal: intAttr(causal ? 1 : 0),
    };
    emitOutput(a, f, (output) => f.add("Attention", inputs, attrs, { domain: "mhafuse", output }));
    ctx.chosen.set(m.root, { path: "attention", analysis: a });
    return replacement(a, f);
  },
};

/** The attention rule set: alternatives tried in order, the packed op first. */
export const attentionRules: RuleSet<FusionContext> = [packedRule, attentionRule];
