/**
 * Weights packed when a graph is prepared, not on its first run: every constant B operand of a MatMul, Gemm or
 * mhafuse.FusedGemm that the native GEMM will run is packed into its panels here, under the very cache key a
 * run's packedB looks up (native-compute.ts), so the first run — and the bound plan's first binding — find
 * them there and pack nothing. The panels live in that one cache, keyed by the weight array: a second
 * prepared graph of the same model (another input signature, padding removal's graph) shares them.
 *
 * The views derived here mirror the op contracts' GEMM problems (src/ops/matmul.ts): a MatMul's B is K×N
 * row-major (one view per matrix of a batched B), a Gemm's is op(B) with its transB and leading dimension.
 * Where the run could not take the native GEMM (transA, alpha ≠ 1, an activation over a full C matrix) or B is
 * not float32 (a float16 weight is converted per run), nothing is packed: panels that would never be read.
 */
import type { Graph, Node } from "../../ir/graph.js";
import type { Tensor } from "../../ir/tensor.js";
import { attrFloat, attrInt } from "../../ops/registry.js";
import type { NativeKernels } from "./native/index.js";
import { packedB, type WeightView } from "./native-compute.js";

const isGemmLike = (n: Node): boolean =>
  (n.domain === "" && (n.opType === "Gemm" || n.opType === "MatMul")) ||
  (n.domain === "mhafuse" && n.opType === "FusedGemm");

/** MatMul's constant B: K×N row-major per matrix of its batch (rank 1: a K×1 column). */
function matmulViews(b: Tensor, B: Float32Array): WeightView[] {
  const dims = b.rank === 1 ? [b.dims[0]!, 1] : b.dims;
  const K = dims[dims.length - 2]!;
  const N = dims[dims.length - 1]!;
  const matrices = dims.slice(0, -2).reduce((x, y) => x * y, 1);
  return Array.from({ length: matrices }, (_, i) => ({ B, bOffset: i * K * N, ldb: N, transB: false, K, N }));
}

/** Gemm / FusedGemm's constant B, where the native GEMM takes the node's problem (nativeGemmFits). */
function gemmViews(node: Node, b: Tensor, B: Float32Array, c: Tensor | undefined): WeightView[] {
  if (b.rank !== 2 || attrInt(node, "transA", 0) !== 0 || attrFloat(node, "alpha", 1) !== 1) return [];
  const transB = attrInt(node, "transB", 0) !== 0;
  const [K, N] = transB ? [b.dims[1]!, b.dims[0]!] : [b.dims[0]!, b.dims[1]!];
  if (node.opType === "FusedGemm" && node.inputs[2]) {
    // The activation comes before a residual in the native epilogue: only a bias row (or no C) fits.
    const biasRow =
      c?.type === "float32" && c.size === N && c.dims.at(-1) === N && attrFloat(node, "beta", 1) === 1;
    if (!biasRow) return [];
  }
  return [{ B, bOffset: 0, ldb: b.dims[1]!, transB, K, N }];
}

/** The constant weight views of `graph`'s GEMM nodes, as their runs will ask packedB for them. */
export function constantGemmWeights(graph: Graph): WeightView[] {
  const views: WeightView[] = [];
  for (const node of graph.nodes) {
    if (!isGemmLike(node)) continue;
    const b = graph.initializers.get(node.inputs[1] ?? "");
    if (b?.type !== "float32" || b.rank === 0 || b.size === 0) continue;
    const B = b.data as Float32Array;
    const c = node.inputs[2] ? graph.initializers.get(node.inputs[2]) : undefined;
    views.push(...(node.opType === "MatMul" ? matmulViews(b, B) : gemmViews(node, b, B, c)));
  }
  return views;
}

/**
 * Packs every constant GEMM weight of `graph` into the native GEMM's cache (its arrays must already be marked
 * immutable); returns how many views that graph has. Views already packed (an earlier graph of the same
 * weights) are found, not packed again.
 */
export function prepackWeights(native: NativeKernels, graph: Graph): number {
  const views = constantGemmWeights(graph);
  for (const v of views) packedB(native, v);
  return views.length;
}
