import { OptionError } from "../errors.js";
import type { Graph } from "../ir/graph.js";
import { fuseAttention } from "./attention/fuse.js";
import type { AttentionReport } from "./attention/report.js";
import { foldConstants } from "./fold-constants.js";
import { foldShapes } from "./fold-shapes.js";
import { fuseGelu } from "./gelu.js";
import { fuseGemmActivation } from "./gemm-activation.js";
import { fuseLinearBias } from "./linear-bias.js";
import { type Pass, type PassStats, runPasses } from "./manager.js";
import { removeDeadNodes } from "./remove-dead-nodes.js";
import { fuseRmsNorm } from "./rms-norm.js";
import { fuseSkipLayerNorm } from "./skip-layer-norm.js";
import { composeTransposes } from "./transpose-chains.js";

export type { AttentionKind, AttentionReport, AttentionTrait, FusionPath } from "./attention/report.js";
export { summarizeReport } from "./attention/report.js";
export type { Pass, PassStats } from "./manager.js";
export {
  composeTransposes,
  foldConstants,
  foldShapes,
  fuseAttention,
  fuseGelu,
  fuseGemmActivation,
  fuseLinearBias,
  fuseRmsNorm,
  fuseSkipLayerNorm,
  removeDeadNodes,
  runPasses,
};

/** Like onnxruntime's GraphOptimizationLevel: attention fusion runs at "extended" and "all". */
export type GraphOptimizationLevel = "disabled" | "basic" | "extended" | "all";

export interface OptimizeOptions {
  level?: GraphOptimizationLevel;
  /** Which runtime the result is for; "onnxruntime" conversion happens in to-onnxruntime.ts afterwards. */
  target?: "mhafuse" | "onnxruntime";
  /** Pass names left out of the level's pipeline (as onnxruntime's disabled optimizers), e.g. for A/B benches. */
  disabledPasses?: readonly string[];
}

export interface OptimizeResult {
  graph: Graph;
  report: AttentionReport[];
  stats: PassStats[];
}

const LEVELS: GraphOptimizationLevel[] = ["disabled", "basic", "extended", "all"];

const basicPasses: Pass[] = [
  { name: "fold-constants", run: (g) => ({ changed: foldConstants(g) }) },
  { name: "fold-shapes", run: (g) => ({ changed: foldShapes(g) }) },
  { name: "fold-constants-after-shapes", run: (g) => ({ changed: foldConstants(g) }) },
  { name: "remove-dead-nodes", run: (g) => ({ changed: removeDeadNodes(g) }) },
];

const fusionPasses: Pass[] = [
  {
    name: "fuse-attention",
    run: (g) => {
      const report = fuseAttention(g);
      return { changed: report.filter((b) => b.fused).length, result: report };
    },
  },
  // After attention fusion, which sees Qwen3's per-head Q/K RMSNorms spelled out (they stay before the fused
  // op's rotary, and are fused here like every other RMSNorm).
  { name: "fuse-rms-norm", run: (g) => ({ changed: fuseRmsNorm(g) }) },
  { name: "fuse-gelu", run: (g) => ({ changed: fuseGelu(g) }) },
  // After attention fusion, which must still see each projection's MatMul + Add; the projections it made
  // dead go first, so that only live linear layers are rewritten and counted.
  { name: "remove-dead-nodes-before-linear-bias", run: (g) => ({ changed: removeDeadNodes(g) }) },
  { name: "fuse-linear-bias", run: (g) => ({ changed: fuseLinearBias(g) }) },
  // After linear-bias, so that a bias Add feeding a norm directly stays the linear layer's (its shapes
  // differ anyway); the residual Add in front of each post-LN norm goes into the norm's kernel.
  { name: "fuse-skip-layer-norm", run: (g) => ({ changed: fuseSkipLayerNorm(g) }) },
  // After GELU and linear-bias fusion made the Gelu and the Gemm it reads.
  { name: "fuse-gemm-activation", run: (g) => ({ changed: fuseGemmActivation(g) }) },
  // Last: the fused ops' layouts can leave a Transpose right after another (Qwen3's Q/K norms).
  { name: "compose-transposes", run: (g) => ({ changed: composeTransposes(g) }) },
  { name: "remove-dead-nodes-after-fusion", run: (g) => ({ changed: removeDeadNodes(g) }) },
];

/**
 * The optimisation pipeline the session, `mhafuse inspect/run/optimize` use. Never modifies `graph`.
 * "basic": constant and shape folding, dead-node removal; "extended"/"all": plus attention, RMSNorm, GELU,
 * linear-bias (MatMul + Add → Gemm), residual + LayerNorm (→ SkipLayerNormalization) and Gemm + GELU (erf or
 * tanh) + residual Add (→ mhafuse.FusedGemm) fusion, then Transpose chains composed (compose-transposes).
 */
export function optimizeGraph(graph: Graph, options: OptimizeOptions = {}): OptimizeResult {
  const level = options.level ?? "all";
  if (!LEVELS.includes(level))
    throw new OptionError(`unknown optimisation level '${level}' (use ${LEVELS.join(", ")})`);
  const rank = LEVELS.indexOf(level);
  const disabled = new Set(options.disabledPasses ?? []);
  const all = [...basicPasses, ...fusionPasses];
  for (const name of disabled)
    if (!all.some((p) => p.name === name))
      throw new OptionError(`unknown pass '${name}' (the passes: ${all.map((p) => p.name).join(", ")})`);
  const passes = [...(rank >= 1 ? basicPasses : []), ...(rank >= 2 ? fusionPasses : [])].filter(
    (p) => !disabled.has(p.name),
  );
  const { graph: out, stats, results } = runPasses(graph, passes);
  const report = (results.get("fuse-attention") as AttentionReport[] | undefined) ?? [];
  return { graph: out, report, stats };
}
