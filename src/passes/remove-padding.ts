import type { Graph, Node } from "../ir/graph.js";
import { cloneGraph, consumers, producers, topologicalOrder } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { PADDING_DOMAIN } from "../ops/padding.js";
import { isBatchFirst } from "../ops/qkv-to-context.js";
import { inferGraphTypes } from "./infer-types.js";
import { removeDeadNodes } from "./remove-dead-nodes.js";
import { intAttr, intsAttr, NodeFactory } from "./rewrite.js";

/**
 * Automatic padding removal (issue 9, item 3), for one input signature: when every packed attention op of an
 * encoder reads its lengths from one [B, S] attention mask, the token-wise part of the graph around them runs
 * on the valid tokens alone — gathered once (mhafuse.RemovePadding), the packed op in its var-seqlen form with
 * cu_seqlens, scattered back where a value leaves that part (mhafuse.RestorePadding). What TensorRT's var-seqlen
 * BERT and onnxruntime's PackedAttention make users do by hand.
 *
 * Exact at every valid position: each op in the region computes a row (token) from the same row of its inputs
 * and row-invariant constants, and the attention over a sequence's gathered tokens is the masked attention.
 * Padded positions of the region's outputs are zeros (as in TensorRT's var-seqlen and onnxruntime's
 * RestorePadding) instead of the values the model computes there; sessions say so and `removePadding: false`
 * computes them.
 *
 * It runs at prepare time, when the feeds' dims are known: every value's shape is then a list of numbers, and a
 * value's layout — where its token rows are — is derived op by op and checked against those numbers:
 *   BS   [B, S, ...rest]   batch-major tokens        → [1, T, ...rest] without padding
 *   SB   [S, B, ...rest]   the packed op's layout     → [T, 1, ...rest]
 *   FLAT [B·S, ...rest]    a Gemm's 2-D view          → [T, ...rest]
 * In the compact world the three hold the tokens in the same order, so every change of layout inside the region
 * (the Transposes around the packed op, Flatten and the Reshapes of linear layers) becomes a Reshape to a
 * constant shape, which only re-views the data.
 */

type Kind = "BS" | "SB" | "FLAT";

interface Layout {
  kind: Kind;
  rest: number[];
}

export interface PaddingRemoval {
  graph: Graph;
  /** The mask input whose zeros mark the removed tokens. */
  mask: string;
  /** Nodes that run on the valid tokens only. */
  regionNodes: number;
  /** Values gathered into the compact form, and values scattered back. */
  entries: string[];
  exits: string[];
}

export type PaddingRemovalResult = PaddingRemoval | { skipped: string };

const TOKEN_DIMS: Record<Kind, number> = { BS: 2, SB: 2, FLAT: 1 };

const UNARY = new Set([
  "Abs",
  "Cast",
  "Ceil",
  "Dropout",
  "Elu",
  "Erf",
  "Exp",
  "FastGelu",
  "Floor",
  "Gelu",
  "HardSigmoid",
  "Identity",
  "LeakyRelu",
  "Log",
  "Mish",
  "Neg",
  "QuickGelu",
  "Reciprocal",
  "Relu",
  "Selu",
  "Sigmoid",
  "Sign",
  "Sin",
  "Cos",
  "Softplus",
  "Softsign",
  "Sqrt",
  "Tanh",
]);

const BINARY = new Set(["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "BiasGelu", "PRelu"]);

const NORMS = new Set([
  "LayerNormalization",
  "SimplifiedLayerNormalization",
  "SkipLayerNormalization",
  "SkipSimplifiedLayerNormalization",
]);

const RESHAPES = new Set(["Reshape", "Flatten", "Squeeze", "Unsqueeze"]);

const eq = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

export function removePadding(
  graph: Graph,
  inputDims: Record<string, readonly number[]>,
): PaddingRemovalResult {
  const produced = producers(graph);
  const packed = graph.nodes.filter(
    (n) =>
      n.opType === "QKVToContext" &&
      n.domain === "mhafuse" &&
      !(n.attrs.var_seqlen?.type === "int" && n.attrs.var_seqlen.value !== 0),
  );
  const maskOf = (n: Node) => {
    const lengths = produced.get(n.inputs[1] ?? "");
    return lengths?.opType === "SeqLensFromMask" && lengths.domain === "mhafuse"
      ? lengths.inputs[0]
      : undefined;
  };
  if (packed.length === 0) return { skipped: "no packed attention op reads a padding mask" };
  const masks = new Set(packed.map(maskOf));
  const mask = [...masks][0];
  if (masks.size !== 1 || !mask)
    return { skipped: "the packed attention ops do not all read one attention mask" };
  const maskDims = inputDims[mask];
  if (!graph.inputs.some((i) => i.name === mask) || !maskDims || maskDims.length !== 2)
    return { skipped: `the attention mask '${mask}' is not a [batch, seq] model input` };
  const [B, S] = maskDims as [number, number];

  // Every value's dims for this signature.
  const concrete = cloneGraph(graph);
  concrete.inputs = concrete.inputs.map((i) =>
    inputDims[i.name] ? { ...i, shape: [...inputDims[i.name]!] } : i,
  );
  const types = inferGraphTypes(concrete).types;
  const dimsOf = (v: string): number[] | undefined => {
    const init = graph.initializers.get(v);
    if (init) return [...init.dims];
    const s = types.get(v)?.shape;
    return s?.every((d) => typeof d === "number") ? (s as number[]) : undefined;
  };
  const expected = (l: Layout): number[] =>
    l.kind === "BS" ? [B, S, ...l.rest] : l.kind === "SB" ? [S, B, ...l.rest] : [B * S, ...l.rest];
  const layoutFromDims = (kind: Kind, dims: number[] | undefined): Layout | undefined => {
    if (!dims || dims.length < TOKEN_DIMS[kind]) return undefined;
    const l = { kind, rest: dims.slice(TOKEN_DIMS[kind]) };
    return eq(expected(l), dims) ? l : undefined;
  };

  const layout = new Map<string, Layout>();
  const rowWise = new Set<Node>();
  const readers = consumers(graph);
  const isInvariantFor = (v: string, kind: Kind, outRank: number): boolean => {
    // Broadcast against the token rows: size 1 (or absent) on every token dim.
    const d = dimsOf(v);
    if (!d || layout.has(v)) return false;
    const lead = outRank - d.length;
    for (let i = 0; i < TOKEN_DIMS[kind]; i++) if (i - lead >= 0 && d[i - lead] !== 1) return false;
    return true;
  };
  /** A region input's layout: propagated, or BS by its dims (an entry, gathered by RemovePadding). */
  const inLayout = (v: string): Layout | undefined =>
    layout.get(v) ?? (graph.initializers.has(v) ? undefined : layoutFromDims("BS", dimsOf(v)));
  const unusedOutputs = (n: Node, from: number) =>
    n.outputs.slice(from).every((o) => !o || (readers.get(o)?.length ?? 0) === 0);

  const outputLayouts = (n: Node): (Layout | undefined)[] | undefined => {
    const out0 = dimsOf(n.outputs[0] ?? "");
    const x = n.inputs[0] ? inLayout(n.inputs[0]) : undefined;
    const op = n.opType;
    const std = n.domain === "" || n.domain === "com.microsoft" || n.domain === "mhafuse";
    if (!std) return undefined;
    if (UNARY.has(op)) {
      if (!x || !unusedOutputs(n, 1)) return undefined;
      const l = layoutFromDims(x.kind, out0);
      return l ? [l] : undefined;
    }
    if (BINARY.has(op)) {
      const ins = n.inputs.filter((v) => v);
      const kind = (ins.map((v) => layout.get(v)).find((l) => l) ?? ins.map(inLayout).find((l) => l))?.kind;
      if (!kind || !out0) return undefined;
      for (const v of ins) {
        const l: Layout | undefined =
          layout.get(v) ?? (isInvariantFor(v, kind, out0.length) ? undefined : inLayout(v));
        if (l && (l.kind !== kind || (dimsOf(v)?.length ?? -1) !== out0.length)) return undefined;
        if (!l && !isInvariantFor(v, kind, out0.length)) return undefined;
      }
      const l = layoutFromDims(kind, out0);
      return l ? [l] : undefined;
    }
    if (NORMS.has(op)) {
      if (!x) return undefined;
      const skip = op.startsWith("Skip");
      const rank = dimsOf(n.inputs[0]!)?.length ?? 0;
      let axis = n.attrs.axis?.type === "int" ? n.attrs.axis.value : -1;
      if (axis < 0) axis += rank;
      if (axis < TOKEN_DIMS[x.kind]) return undefined;
      const params = n.inputs.slice(skip ? 2 : 1).filter((v) => v);
      if (!params.every((v) => isInvariantFor(v, x.kind, rank))) return undefined;
      // Outputs 1 and 2 (mean, inverse std) are shaped [B, S, 1] but not taken; a Skip norm's output 3 is the sum.
      const stats = n.outputs.slice(1, 3).every((o) => !o || (readers.get(o)?.length ?? 0) === 0);
      if (!stats) return undefined;
      if (skip) {
        const s = n.inputs[1] ? inLayout(n.inputs[1]) : undefined;
        if (!s || s.kind !== x.kind || !eq(dimsOf(n.inputs[1]!) ?? [], dimsOf(n.inputs[0]!) ?? [-1]))
          return undefined;
        return n.outputs.map((o, i) =>
          i === 0 || i === 3 ? layoutFromDims(x.kind, dimsOf(o ?? "")) : undefined,
        );
      }
      if (!unusedOutputs(n, 1)) return undefined;
      const l = layoutFromDims(x.kind, out0);
      return l ? [l] : undefined;
    }
    if (op === "Softmax" || op === "LogSoftmax") {
      if (!x || !out0) return undefined;
      const axis = n.attrs.axis?.type === "int" ? n.attrs.axis.value : -1;
      if ((axis < 0 ? axis + out0.length : axis) < TOKEN_DIMS[x.kind]) return undefined;
      const l = layoutFromDims(x.kind, out0);
      return l ? [l] : undefined;
    }
    if (op === "MatMul") {
      const w = dimsOf(n.inputs[1] ?? "");
      if (!x || !w || w.length !== 2 || layout.has(n.inputs[1]!)) return undefined;
      if (!graph.initializers.has(n.inputs[1]!) && !isInvariantFor(n.inputs[1]!, x.kind, 2)) return undefined;
      const l = layoutFromDims(x.kind, out0);
      return l ? [l] : undefined;
    }
    if (op === "Gemm" || (op === "FusedGemm" && n.domain === "mhafuse")) {
      const transA = n.attrs.transA?.type === "int" ? n.attrs.transA.value : 0;
      if (x?.kind !== "FLAT" || transA !== 0 || !graph.initializers.has(n.inputs[1] ?? "")) return undefined;
      const c = n.inputs[2];
      if (c && !isInvariantFor(c, "FLAT", 2)) return undefined;
      // FusedGemm's residual (input 3) is [M, N] like the output: its token rows must be the region's too.
      const r = n.inputs[3];
      if (r && (inLayout(r)?.kind !== "FLAT" || !eq(dimsOf(r) ?? [], out0 ?? [-1]))) return undefined;
      const l = layoutFromDims("FLAT", out0);
      return l ? [l] : undefined;
    }
    if (op === "Gather") {
      const axis = n.attrs.axis?.type === "int" ? n.attrs.axis.value : 0;
      const ids = n.inputs[1] ? inLayout(n.inputs[1]) : undefined;
      if (axis !== 0 || !ids || layout.has(n.inputs[0] ?? "") || !graph.initializers.has(n.inputs[0] ?? ""))
        return undefined;
      const l = layoutFromDims(ids.kind, out0);
      return l ? [l] : undefined;
    }
    if (RESHAPES.has(op)) {
      if (!x || !out0) return undefined;
      // A reshape keeps the element order: batch-major rows stay batch-major (BS or FLAT), SB stays SB.
      const l =
        x.kind === "SB"
          ? layoutFromDims("SB", out0)
          : (layoutFromDims("BS", out0) ?? layoutFromDims("FLAT", out0));
      return l && !l.rest.includes(0) ? [l] : undefined;
    }
    if (op === "Transpose") {
      const perm = n.attrs.perm?.type === "ints" ? n.attrs.perm.value : undefined;
      if (!x || !perm || !out0) return undefined;
      if (x.kind === "FLAT") return perm[0] === 0 ? [layoutFromDims("FLAT", out0)] : undefined;
      const restIdentity = perm.slice(2).every((p, i) => p === i + 2);
      if (perm[0] === 0 && perm[1] === 1) return [layoutFromDims(x.kind, out0)];
      if (perm[0] === 1 && perm[1] === 0 && restIdentity)
        return [layoutFromDims(x.kind === "BS" ? "SB" : "BS", out0)];
      return undefined;
    }
    if (op === "QKVToContext" && n.domain === "mhafuse" && packed.includes(n)) {
      const kind = isBatchFirst(n) ? "BS" : "SB";
      if (x?.kind !== kind) return undefined;
      const l = layoutFromDims(kind, out0);
      return l ? [l] : undefined;
    }
    return undefined;
  };

  for (const n of topologicalOrder(graph)) {
    // A node joins when at least one data input is a token tensor and its rule holds.
    const inputs = n.inputs.filter((v) => v);
    if (!inputs.some((v) => layout.has(v) || inLayout(v))) continue;
    const outs = outputLayouts(n);
    if (!outs?.[0]) continue;
    rowWise.add(n);
    n.outputs.forEach((o, i) => {
      if (o && outs[i]) layout.set(o, outs[i]!);
    });
  }

  // The region: the row-wise nodes connected (through values) to the packed attention ops.
  const region = new Set<Node>();
  const stack = packed.filter((n) => rowWise.has(n));
  if (stack.length !== packed.length)
    return {
      skipped: "a packed attention op's input is not in the token layout [S, B, 3E, 1, 1] (or [B, S, …])",
    };
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (region.has(n)) continue;
    region.add(n);
    for (const v of n.inputs) {
      const p = v ? produced.get(v) : undefined;
      if (p && rowWise.has(p) && !region.has(p)) stack.push(p);
    }
    for (const o of n.outputs)
      for (const r of (o && readers.get(o)) || []) if (rowWise.has(r) && !region.has(r)) stack.push(r);
  }

  return rewrite(graph, { region, layout, mask, dimsOf, packed, produced, readers, inLayout });
}

interface RegionInfo {
  region: Set<Node>;
  layout: Map<string, Layout>;
  mask: string;
  dimsOf: (v: string) => number[] | undefined;
  packed: Node[];
  produced: Map<string, Node>;
  readers: Map<string, Node[]>;
  inLayout: (v: string) => Layout | undefined;
}

const COMPACT_SUFFIX = "/compact";

/** The compact form's constant shape: [1, -1, ...rest], [-1, 1, ...rest] or [-1, ...rest]. */
function compactShape(l: Layout): number[] {
  return l.kind === "BS" ? [1, -1, ...l.rest] : l.kind === "SB" ? [-1, 1, ...l.rest] : [-1, ...l.rest];
}

function rewrite(graph: Graph, info: RegionInfo): PaddingRemovalResult {
  const { region, layout, mask, dimsOf, readers } = info;
  const out = cloneGraph(graph);
  const f = new NodeFactory(out, "mhafuse/remove_padding");
  const regionOutputs = new Set<string>();
  for (const n of region) for (const o of n.outputs) if (o && layout.has(o)) regionOutputs.add(o);
  const compactName = (v: string) => `${v}${COMPACT_SUFFIX}`;

  // Entries: token values read by the region but made outside it.
  const entries = new Map<string, string>();
  const entryOf = (v: string): string => {
    let e = entries.get(v);
    if (!e) {
      e = f.add("RemovePadding", [v, mask], {}, { domain: PADDING_DOMAIN });
      entries.set(v, e);
    }
    return e;
  };
  let cu: string | undefined;
  // A region node's input: made in the region (its compact name), a token value made outside (gathered once:
  // the region is closed under row-wise producers, so these are made by other ops or are model inputs), or a
  // row-invariant value read as is.
  const regionInput = (v: string): string => {
    if (!v) return v;
    if (regionOutputs.has(v)) return compactName(v);
    return info.inLayout(v) ? entryOf(v) : v;
  };

  const rewritten: Node[] = [];
  for (const n of graph.nodes) {
    if (!region.has(n)) {
      rewritten.push(n);
      continue;
    }
    const outs = n.outputs.map((o) => (o && layout.has(o) ? compactName(o) : o));
    const l = layout.get(n.outputs[0] ?? "")!;
    const isLayoutChange =
      RESHAPES.has(n.opType) || (n.opType === "Transpose" && layout.get(n.inputs[0] ?? "")?.kind !== l.kind);
    if (isLayoutChange) {
      f.add("Reshape", [regionInput(n.inputs[0]!), f.int64s(compactShape(l))], {}, { output: outs[0] });
      continue;
    }
    if (n.opType === "QKVToContext") {
      cu ??= f.add("CuSeqlensFromMask", [mask], {}, { domain: PADDING_DOMAIN });
      const qkvIn = layout.get(n.inputs[0]!)!;
      const flatIn = f.add("Reshape", [regionInput(n.inputs[0]!), f.int64s([-1, ...qkvIn.rest])]);
      // var-seqlen rows are tokens: batch_first has no meaning there.
      const { batch_first: _batchFirst, ...rest } = n.attrs;
      const attrs = { ...rest, var_seqlen: intAttr(1), has_mask: intAttr(1) };
      const ctx = f.add("QKVToContext", [flatIn, "", cu], attrs, { domain: "mhafuse" });
      f.add("Reshape", [ctx, f.int64s(compactShape(l))], {}, { output: outs[0] });
      continue;
    }
    rewritten.push({ ...n, inputs: n.inputs.map(regionInput), outputs: outs });
  }

  // Exits: region values read outside the region or returned by the graph go back to their padded form.
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const exits: string[] = [];
  for (const v of regionOutputs) {
    const outside = (readers.get(v) ?? []).filter((r) => !region.has(r));
    if (outside.length === 0 && !graphOutputs.has(v)) continue;
    const l = layout.get(v)!;
    const original = dimsOf(v)!;
    if (outside.length > 0 && outside.every((r) => r.opType === "Shape") && !graphOutputs.has(v)) {
      // Only its shape is read: the padded dims, known for this signature.
      for (const r of outside) {
        rewritten.splice(rewritten.indexOf(r), 1);
        const dims = shapeSlice(original, r);
        out.initializers.set(r.outputs[0]!, new Tensor("int64", dims, [dims.length]));
      }
      continue;
    }
    exits.push(v);
    const bs =
      l.kind === "BS" ? compactName(v) : f.add("Reshape", [compactName(v), f.int64s([1, -1, ...l.rest])]);
    if (l.kind === "BS") {
      f.add("RestorePadding", [bs, mask], {}, { domain: PADDING_DOMAIN, output: v });
    } else {
      const padded = f.add("RestorePadding", [bs, mask], {}, { domain: PADDING_DOMAIN });
      if (l.kind === "FLAT") f.add("Reshape", [padded, f.int64s(original)], {}, { output: v });
      else
        f.add(
          "Transpose",
          [padded],
          { perm: intsAttr([1, 0, ...l.rest.map((_, i) => i + 2)]) },
          { output: v },
        );
    }
  }

  out.nodes = [...rewritten, ...f.nodes];
  for (const [name, t] of f.initializers) out.initializers.set(name, t);
  if (!out.opsets.has(PADDING_DOMAIN)) out.opsets.set(PADDING_DOMAIN, 1);
  out.nodes = topologicalOrder(out);
  collapseReshapes(out);
  removeDeadNodes(out);
  return { graph: out, mask, regionNodes: region.size, entries: [...entries.keys()], exits };
}

/** Shape's output for its start/end attributes (opset 15+); the whole shape without them. */
function shapeSlice(dims: number[], shape: Node): number[] {
  const r = dims.length;
  const norm = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = shape.attrs.start?.type === "int" ? norm(shape.attrs.start.value) : 0;
  const end = shape.attrs.end?.type === "int" ? norm(shape.attrs.end.value) : r;
  return dims.slice(start, end);
}

/**
 * Reshape(Reshape(x, a), b) → Reshape(x, b) when b is a constant with no 0 (no dim copied from the input): the
 * region's layout changes come in chains (Gemm → Reshape → Transpose → Reshape → the packed op), and in the
 * compact form each link is a re-view.
 */
function collapseReshapes(graph: Graph): void {
  const made = producers(graph);
  const constantShape = (v: string) => {
    const t = graph.initializers.get(v);
    return t && t.rank === 1 && t.toNumbers().every((d) => d !== 0);
  };
  for (const n of graph.nodes) {
    if (n.opType !== "Reshape" || n.domain !== "" || !constantShape(n.inputs[1] ?? "")) continue;
    let p = made.get(n.inputs[0] ?? "");
    while (p && p.opType === "Reshape" && p.domain === "") {
      n.inputs = [p.inputs[0]!, n.inputs[1]!];
      p = made.get(n.inputs[0]!);
    }
  }
}
