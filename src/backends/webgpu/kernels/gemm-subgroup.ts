/**
 * The subgroup variant of the SIMT SGEMM (GemmTile.subgroup; gemmSource generates the rest of the kernel, B
 * staging, accumulators and epilogue included, shared with the workgroup-memory variant).
 *
 * In the workgroup-memory kernel every thread of a thread-grid row reads the same A words from workgroup memory
 * at every k (a broadcast read), after the workgroup staged them there. Here A never touches workgroup memory:
 * the thread-grid row's lanes split its TM×BK block of A between them, each loading a few vec4s (4 consecutive
 * k of one row) straight from storage into registers, and at every k each lane takes the TM values it needs
 * from their owners with subgroupBroadcast (constant lane: where the lane group is the whole subgroup) or
 * subgroupShuffle (lane group smaller than the subgroup). The k loop is unrolled here, in TypeScript, so the
 * owner lane and register of every value are constants. What it saves: A's stores to workgroup memory, half
 * the staging work between barriers and the workgroup-memory reads of A; what it costs: TM scalar shuffles a k
 * where the workgroup-memory kernel reads TM/4 vec4s (onnxruntime's WebGPU EP uses this design on Intel).
 *
 * It needs subgroups laid out in invocation order (WebGpuFeatures.subgroupsInOrder): a lane group is `lanes`
 * consecutive invocations of the one-dimensional workgroup, a power of two that divides TX (so every lane of a
 * group computes the same rows) and is at most the subgroup size (so it lies inside one subgroup). The layout is
 * probed at 128- and 256-invocation workgroups (device.ts), the sizes of the tiles in use; other thread counts
 * rely on the same layout holding there.
 */
import type { WebGpuFeatures } from "../device.js";
import type { GemmTile } from "./gemm.js";

/** How the subgroup variant runs a tile on this device. */
export interface SubgroupGemmPlan {
  /** Invocations that share one copy of the thread-grid row's A block. */
  lanes: number;
  /** The lane group is the whole subgroup (its size fixed): subgroupBroadcast with constant lanes. */
  broadcast: boolean;
}

/**
 * The plan for tile `t` here, or why the subgroup variant cannot run. `lanes` forces the lane-group size (tests:
 * smaller than the subgroup takes the subgroupShuffle path); default the largest power of two dividing
 * TX = BN/TN that fits in the smallest subgroup.
 */
export function subgroupGemmPlan(
  features: WebGpuFeatures,
  t: Pick<GemmTile, "BN" | "TN">,
  lanes?: number,
): SubgroupGemmPlan | string {
  if (!features.subgroups) return "the device has no subgroups";
  if (!features.subgroupsInOrder)
    return "subgroups are not laid out in invocation order (WebGpuFeatures.subgroupsInOrder)";
  const W = features.subgroupMinSize;
  if (W < 1) return "the adapter does not report its subgroup size";
  const TX = t.BN / t.TN;
  let G = lanes ?? 1;
  if (lanes === undefined) while (G * 2 <= W && TX % (G * 2) === 0) G *= 2;
  if (G < 1 || G & (G - 1) || TX % G !== 0 || G > W)
    return `lane group ${G} must be a power of two dividing the ${TX} threads of a tile row and at most the subgroup size ${W}`;
  return { lanes: G, broadcast: G === W && features.subgroupMaxSize === W };
}

interface ALayout {
  BK: number;
  TM: number;
  TY: number;
  lanes: number;
  aVec4: boolean;
  /** Widens a loaded vec4 of storage type to vec4<f32> (f16 storage; identity for f32). */
  w4: (x: string) => string;
  /** Widens a loaded scalar to f32. */
  w1: (x: string) => string;
}

/** vec4s (4 consecutive k of one row) in a thread-grid row's A block, and how many each lane holds. */
function units(l: ALayout): { KQ: number; U: number; E: number } {
  const KQ = l.BK / 4;
  const U = l.TM * KQ;
  return { KQ, U, E: Math.ceil(U / l.lanes) };
}

/** Declarations of the lane's A registers (aR0 … ) and the lane's place in its group. */
export function subgroupADecls(l: ALayout, plan: SubgroupGemmPlan): string {
  const { E } = units(l);
  const regs = Array.from({ length: E }, (_, e) => `  var aR${e} = vec4<f32>(0.0);`).join("\n");
  // The group's first lane in the subgroup: shuffles address lanes of the subgroup, not of the group.
  const base = plan.broadcast ? "" : `\n  let sgBase = sgLane - sgLane % ${l.lanes}u;`;
  return `  // This lane's share of its tile row's A block (vec4s of 4 consecutive k of one row): the row's other lanes
  // take it by shuffle, so A never goes through workgroup memory.
  let lane = tid % ${l.lanes}u;${base}\n${regs}`;
}

/**
 * Loads of one K step's A block into the lane's registers: unit e·lanes + lane, zero past M, K (or the split-K
 * chunk) and the block. Rows follow the workgroup-memory kernel's layout (4-row groups strided by TY), so the
 * accumulators and the epilogue are the same.
 */
export function subgroupALoads(l: ALayout): string {
  const { KQ, U, E } = units(l);
  const out: string[] = [];
  for (let e = 0; e < E; e++) {
    const inBlock = (e + 1) * l.lanes > U ? `unit < ${U}u && ` : "";
    const load = l.aVec4
      ? `if (${inBlock}gm < u.M && gk < kEnd) { v = ${l.w4("A[(aBase + gm * u.K + gk) / 4u]")}; }`
      : `if (${inBlock}gm < u.M) {
      let row = aBase + gm * u.K;
      if (gk < kEnd) { v.x = ${l.w1("A[row + gk]")}; }
      if (gk + 1u < kEnd) { v.y = ${l.w1("A[row + gk + 1u]")}; }
      if (gk + 2u < kEnd) { v.z = ${l.w1("A[row + gk + 2u]")}; }
      if (gk + 3u < kEnd) { v.w = ${l.w1("A[row + gk + 3u]")}; }
    }`;
    out.push(`  {
    let unit = ${e * l.lanes}u + lane; let q = unit / ${KQ}u;
    let gm = m0 + (ty + (q / 4u) * ${l.TY}u) * 4u + q % 4u; let gk = k0 + (unit % ${KQ}u) * 4u;
    var v = vec4<f32>(0.0);
    ${load}
    aR${e} = v;
  }`);
  }
  return out.join("\n");
}

/** Row q (of the thread's TM: 4-row group q / 4, row q % 4) of A at k of the step, from the lane that holds it. */
export function subgroupAValue(l: ALayout, plan: SubgroupGemmPlan, q: number, k: number): string {
  const { KQ } = units(l);
  const unit = q * KQ + Math.floor(k / 4);
  const reg = `aR${Math.floor(unit / l.lanes)}.${"xyzw"[k % 4]}`;
  const owner = unit % l.lanes;
  return plan.broadcast
    ? `subgroupBroadcast(${reg}, ${owner}u)`
    : `subgroupShuffle(${reg}, sgBase + ${owner}u)`;
}
