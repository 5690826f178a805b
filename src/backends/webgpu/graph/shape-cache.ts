/**
 * The host shape chains of a prepared graph, evaluated once per feed-dims signature instead of every run:
 * Shape → Gather → Concat → Reshape targets, Range / ConstantOfShape position tables, causal-mask tables and
 * the like depend only on the feeds' dims (and on initializers), never on feed values, so their outputs are
 * kept per signature (the feeds' names, dtypes and dims) and handed out on later runs.
 *
 * Which steps qualify is decided once from the graph, conservatively:
 *  - a value's DIMS are known from the feeds' dims when it is a feed or an initializer, or its producer is an
 *    op whose output dims follow from its inputs' dims (DIMS_FROM_DIMS) — or from its inputs' dims plus the
 *    values of the inputs listed in VALUE_INPUTS, which must themselves be cacheable;
 *  - a step is CACHEABLE when it is deterministic and every input is an initializer or a cacheable value, or
 *    it is Shape / Size of a value whose dims are known.
 * Ops outside both tables (NonZero, Unique, Compress, NonMaxSuppression…) stop the propagation. At run time a
 * step is cached only when all its outputs are host tensors (a cacheable step that ran on a GPU kernel is not)
 * and none is a graph output (callers may own those).
 */
import { type Graph, type Node, normalizeDomain } from "../../../ir/graph.js";
import { Tensor } from "../../../ir/tensor.js";
import type { RunValue } from "./values.js";

const UNARY = [
  "Abs Neg Exp Log Sqrt Reciprocal Relu Sigmoid Tanh Erf Gelu Cos Sin Floor Ceil Round Sign IsNaN IsInf",
  "Not Softplus LeakyRelu Elu Selu HardSigmoid Softsign",
].join(" ");
const DIMS_FROM_DIMS = new Set(
  [
    UNARY,
    "Add Sub Mul Div Pow Mod And Or Xor Equal Less LessOrEqual Greater GreaterOrEqual Where Max Min Sum Mean",
    "Cast CastLike Identity Flatten Transpose Concat Gather GatherElements GatherND Shape Size Clip Trilu",
    "Softmax LogSoftmax LayerNormalization SkipLayerNormalization SimplifiedLayerNormalization",
    "SkipSimplifiedLayerNormalization RMSNormalization BatchNormalization InstanceNormalization",
    "MatMul Gemm FusedGemm Conv Einsum Attention MultiHeadAttention QKVToContext SeqLensFromMask BiasGelu FastGelu",
    "CumSum ArgMax ArgMin EyeLike DepthToSpace SpaceToDepth PRelu RotaryEmbedding",
  ]
    .join(" ")
    .split(" "),
);
/** Ops whose output dims depend on the values of these inputs (which must be cacheable) besides dims. */
const VALUE_INPUTS: Record<string, readonly number[]> = {
  Reshape: [1],
  Expand: [1],
  Slice: [1, 2, 3, 4],
  Squeeze: [1],
  Unsqueeze: [1],
  Tile: [1],
  Range: [0, 1, 2],
  ConstantOfShape: [0],
  OneHot: [1],
  Pad: [1, 3],
  Split: [1],
  TopK: [1],
  ReduceMean: [1],
  ReduceSum: [1],
  ReduceMax: [1],
  ReduceMin: [1],
  ReduceProd: [1],
  ReduceL2: [1],
  ReduceSumSquare: [1],
};
const NONDETERMINISTIC = new Set([
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Multinomial",
  "Bernoulli",
]);
/** Signatures kept per prepared graph (the session keeps 8 prepared signatures too). */
const MAX_SIGNATURES = 8;

export class ShapeChainCache {
  /** Per step of the plan: whether its outputs depend only on the feeds' dims. */
  readonly cacheable: readonly boolean[];
  /**
   * Values that depend on the feeds' dims alone: initializers and every output of a cacheable step. A replay
   * plan (./replay-capture.ts) takes these as recorded; every other host value it recomputes or compares.
   */
  readonly dimsOnly: ReadonlySet<string>;
  readonly #byKey = new Map<string, Map<number, readonly RunValue[]>>();
  readonly #outputs: ReadonlySet<string>;

  constructor(graph: Graph, order: readonly Node[]) {
    const dimsKnown = new Set<string>([...graph.inputs.map((i) => i.name), ...graph.initializers.keys()]);
    const valueKnown = new Set<string>(graph.initializers.keys());
    const isValue = (name: string) => !name || valueKnown.has(name);
    this.#outputs = new Set(graph.outputs.map((o) => o.name));
    this.cacheable = order.map((node) => {
      const present = node.inputs.filter((n) => n);
      const shapeRead =
        (node.opType === "Shape" || node.opType === "Size") && normalizeDomain(node.domain) === "";
      const cacheable = shapeRead
        ? present.length > 0 && present.every((n) => dimsKnown.has(n))
        : !NONDETERMINISTIC.has(node.opType) && node.inputs.every(isValue);
      const valueInputs = VALUE_INPUTS[node.opType];
      const dims =
        cacheable ||
        (present.every((n) => dimsKnown.has(n)) &&
          (DIMS_FROM_DIMS.has(node.opType) ||
            (valueInputs?.every((i) => isValue(node.inputs[i] ?? "")) ?? false)));
      for (const o of node.outputs) {
        if (!o) continue;
        if (cacheable) valueKnown.add(o);
        if (dims) dimsKnown.add(o);
      }
      return cacheable;
    });
    this.dimsOnly = valueKnown;
  }

  /** The signature of a run: every feed's name, dtype and dims. */
  key(feeds: Readonly<Record<string, Tensor>>): string {
    return Object.keys(feeds)
      .sort()
      .map((k) => `${k}:${feeds[k]!.type}[${feeds[k]!.dims.join(",")}]`)
      .join(";");
  }

  /** The outputs of `step` computed by an earlier run with this signature, if any. */
  get(key: string, step: number): readonly RunValue[] | undefined {
    return this.cacheable[step] ? this.#byKey.get(key)?.get(step) : undefined;
  }

  /** Keeps a cacheable step's outputs when every one is a host tensor and none is a graph output. */
  set(key: string, step: number, node: Node, outputs: readonly (RunValue | undefined)[]): void {
    if (!this.cacheable[step]) return;
    if (!outputs.every((v) => v === undefined || v instanceof Tensor)) return;
    if (node.outputs.some((o) => this.#outputs.has(o))) return;
    let entry = this.#byKey.get(key);
    if (!entry) {
      if (this.#byKey.size >= MAX_SIGNATURES) this.#byKey.delete(this.#byKey.keys().next().value!);
      entry = new Map();
      this.#byKey.set(key, entry);
    }
    entry.set(step, outputs as readonly RunValue[]);
  }

  /** Cached steps for a signature (tests: the cache is used). */
  size(key: string): number {
    return this.#byKey.get(key)?.size ?? 0;
  }
}
