import type { Graph } from "../../ir/graph.js";
import type { Tensor } from "../../ir/tensor.js";
import type { GraphView } from "../graph-view.js";
import type { Decline, Match, Replacement, Rule, RuleSet } from "../pattern.js";
import { floatAttr, intAttr, intsAttr, NodeFactory } from "../rewrite.js";
import { tensorToFloat16 } from "../to-float16.js";
import { analyzeBlock, type BlockAnalysis } from "./analyze.js";
import { columns, packProjectionWeights, scaleInterleavedQ } from "./pack.js";
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
  // The cache Concats go too: the fused op produces their outputs (present key/value) itself.
  const remove = [a.output.replaces, ...(a.cache?.concats ?? [])];
  return { add: f.nodes, remove, initializers: f.initializers };
}

/**
 * Packed QKV: self-attention whose Q/K/V are projections of one input (three projections, or one fused
 * Q|K|V or head-interleaved projection) and whose only bias is a padding mask from a graph input, or none.
 * The projections become one MatMul with the head-interleaved weight (none when the export's own weight is
 * head-interleaved already); the mask becomes lengths at run time; rows that turn out not to be
 * right-padded fall back to the original bias.
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
  const { factory: base, result: a } = ctx.analyze(m);
  if ("decline" in a) return a;
  if (a.cache) return { decline: "a KV cache (past key/value) needs the general attention op" };
  if (a.q.numHeads !== a.k.numHeads || a.v.headSize !== a.q.headSize)
    return { decline: "packed QKV needs equal Q/K/V head counts and sizes" };
  const p = a.projections;
  if (p && (p.q.input !== p.k.input || p.q.input !== p.v.input))
    return { decline: "Q, K and V project different inputs" };
  const biasClass = a.biasClass;
  if (biasClass?.kind === "causal" || biasClass?.kind === "causal+padding")
    return { decline: "causal: the packed op (TensorRT bertQKVToContext semantics) has no causal mask" };
  if (biasClass && biasClass.kind !== "padding")
    return { decline: "the bias is not a padding mask from a graph input" };
  if (a.rotary)
    return { decline: "rotary on Q/K: the packed op projects Q/K/V in one MatMul with no rotation after it" };
  const f = new NodeFactory(ctx.graph, `${base.fresh("packed")}`);
  const qkvBse = packedProjection(a, ctx, f);
  if (typeof qkvBse !== "string") return qkvBse;
  const e = a.q.numHeads * a.q.headSize;
  // Batch-first ([B, S, 3E, 1, 1], the projection's own layout): no Transpose before the op or after it.
  const qkv = f.add("Reshape", [qkvBse, f.int64s([0, 0, 3 * e, 1, 1])], { allowzero: intAttr(0) });
  // No mask (ViT-style encoders): every key of every row is valid, the op takes no lengths.
  const inputs = [qkv];
  if (biasClass) {
    let lengths = ctx.seqLens.get(biasClass.mask);
    if (!lengths) {
      lengths = f.add("SeqLensFromMask", [biasClass.mask], {}, { domain: "mhafuse" });
      ctx.seqLens.set(biasClass.mask, lengths);
    }
    inputs.push(lengths, a.bias!);
  }
  const context = f.add(
    "QKVToContext",
    inputs,
    {
      num_heads: intAttr(a.q.numHeads),
      hidden_size: intAttr(e),
      compute_padded_rows: intAttr(1),
      batch_first: intAttr(1),
    },
    { domain: "mhafuse" },
  );
  emitOutput(a, f, (output) =>
    f.add("Reshape", [context, f.int64s([0, 0, e])], { allowzero: intAttr(0) }, { output }),
  );
  ctx.chosen.set(m.root, { path: "packed-qkv", analysis: a });
  return replacement(a, f);
}

const isHalfOrSingle = (t: Tensor) => t.type === "float32" || t.type === "float16";

/**
 * The [B, S, 3E] head-interleaved projection the packed op reads: three projections packed, a Q | K | V
 * split projection repacked, or a head-interleaved projection used as it is (rescaled only when the block's
 * scale is not 1/√H, which the packed op applies).
 */
function packedProjection(a: BlockAnalysis, ctx: FusionContext, f: NodeFactory): string | Decline {
  const n = a.q.numHeads;
  const h = a.q.headSize;
  const e = n * h;
  const qFactor = a.chain.scale * Math.sqrt(h);
  let x: string;
  let packed: { weight: Tensor; bias?: Tensor };
  let dtype: Tensor["type"];
  if (a.projections) {
    const p = a.projections;
    const weights = [p.q, p.k, p.v].map((x) => ctx.view.constant(x.weight)!);
    dtype = weights[0]!.type;
    if (!isHalfOrSingle(weights[0]!))
      return { decline: `packed QKV needs float32 or float16 projection weights, got ${dtype}` };
    if (weights.some((w) => w.type !== dtype || w.dims[1] !== e || w.dims[0] !== weights[0]!.dims[0]))
      return { decline: "packed QKV needs Q/K/V projection weights [E_in, N·H] of one dtype" };
    const biases = [p.q, p.k, p.v].map((x) => (x.bias ? ctx.view.constant(x.bias) : undefined));
    packed = packProjectionWeights(
      weights as [never, never, never],
      biases as [never, never, never],
      n,
      qFactor,
    );
    x = p.q.input;
  } else if (a.fusedQkv) {
    const fq = a.fusedQkv;
    dtype = fq.weight.type;
    if (!isHalfOrSingle(fq.weight))
      return { decline: `packed QKV needs float32 or float16 projection weights, got ${dtype}` };
    x = fq.input;
    if (fq.layout === "head-interleaved") {
      // Already the packed op's layout: the export's own projection output is the op's input.
      if (Math.abs(qFactor - 1) < 1e-6) return fq.value;
      packed = {
        weight: scaleInterleavedQ(fq.weight, n, h, qFactor),
        bias: fq.bias && scaleInterleavedQ(fq.bias, n, h, qFactor),
      };
    } else {
      const part = (t: Tensor | undefined, i: number) => (t ? columns(t, i * e, (i + 1) * e) : undefined);
      const w = [0, 1, 2].map((i) => part(fq.weight, i)!) as [Tensor, Tensor, Tensor];
      const b = [0, 1, 2].map((i) => part(fq.bias, i)) as [Tensor, Tensor, Tensor];
      packed = packProjectionWeights(w, b, n, qFactor);
    }
  } else {
    return {
      decline:
        "Q/K/V are neither plain projections (MatMul + Add) split into heads nor one fused QKV projection",
    };
  }
  // Packing is a permutation (times the folded scale): a float16 model gets its packed weights in float16.
  const asModel = (t: Tensor) => (dtype === "float16" ? tensorToFloat16(t) : t);
  const proj = f.add("MatMul", [x, f.constant(asModel(packed.weight), "qkv_weight")]);
  return packed.bias ? f.add("Add", [proj, f.constant(asModel(packed.bias), "qkv_bias")]) : proj;
}

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
