/**
 * The subgroup flash-attention kernel (float32 math; f32 or f16 storage): the default wherever the adapter has
 * subgroups of at least 8 invocations; attention.ts's workgroup-memory kernel is the fallback.
 *
 * Workgroup: TY row groups × TX = 8 lanes, Br = RT·TY query rows, key tiles of BC = 32. Thread (ty, tx) owns
 * the RT query rows ty + TY·r — interleaved, so the 4 row groups of a 32-wide subgroup read 4 consecutive
 * (bank-distinct) Q and P rows — and, in a key tile, the 4 keys tx + 8e, again interleaved so the 8 lanes read
 * 8 consecutive K rows. Row strides in workgroup memory are an odd number of vec4s for the same reason.
 *
 * Per key tile: K and V tiles load together (one barrier); each thread computes its RT×4 score block from
 * vec4 reads (RT + 4 reads per 16·RT FMAs, vs 8 per 64 in the workgroup-memory kernel); the online softmax
 * runs in registers, its row max and sum reduced over the row group's 8 lanes with subgroupShuffleXor (8
 * consecutive invocations are in one subgroup where subgroups have ≥ 8 of them); then each thread adds P·V
 * into its RT rows × 4·NV output columns (NV = 2 at head size 64) and a last barrier frees the tiles. The
 * probabilities reach P·V either from the row group's lanes by subgroupShuffle (shuffleP: 2 barriers per
 * tile, no P tile) or through a padded P tile (one more barrier; the default — within 1% of the shuffle on the
 * H200, attention.ts FAST_DEFAULT). No serial per-row phase; both products use explicit vec4 fma (no dot +
 * add).
 *
 * Semantics are the workgroup-memory kernel's, from the same prologue and store (attention-wgsl.ts): see the
 * header of attention.ts.
 */
import {
  type AttentionIo,
  attentionHead,
  attentionPrologue,
  BC,
  biasRead,
  round4,
  storeRow,
  TX,
  tileLoader,
  tilePrefetcher,
} from "./attention-wgsl.js";

export interface FastConfig extends AttentionIo {
  /** Query rows per thread (the register block's height): 4 by default (8 spills on the H200); tested with 4, 6 and 8. */
  RT: number;
  /** Row groups (of TX lanes) per workgroup: Br = RT·TY rows, TX·TY threads. */
  TY: number;
  /**
   * P·V reads the probabilities from the row group's lanes (subgroupShuffle) instead of a P tile: no P in
   * workgroup memory and 2 barriers per key tile instead of 3, for RT shuffles per key.
   */
  shuffleP?: boolean;
  /**
   * K and V tiles through registers (default where rows are vec4s): the next tile's global loads are issued
   * before this tile's products and stored after them; false loads each tile before its use (the old way).
   */
  prefetchKV?: boolean;
  /**
   * Timing only (wrong results): drop a stage — the softmax's exp, P·V, the K/V tile loads after the first tile
   * ("loads"), or the Q·Kᵀ products ("qk", constant scores).
   */
  ablate?: "softmax" | "pv" | "loads" | "qk";
}

/** Odd, so rows read at the same time by consecutive lanes fall into distinct vec4 banks. */
const odd = (x: number) => x | 1;

function fastDims(c: Pick<FastConfig, "H" | "HV" | "RT" | "TY" | "shuffleP">) {
  const QS = odd(round4(c.H) / 4); // vec4s per Q/K row in workgroup memory
  const VS = round4(c.HV) / 4; // vec4s per V row (lanes read consecutive vec4s of one row: no padding)
  const PS = c.shuffleP ? 0 : odd(BC / 4); // vec4s per P row
  return { QS, VS, PS, NV: Math.ceil(VS / TX), Br: c.RT * c.TY, T: TX * c.TY };
}

/** Workgroup memory of a config, in bytes: Q, K, V and P tiles and the key-range word. */
export function fastAttentionSharedBytes(c: Pick<FastConfig, "H" | "HV" | "RT" | "TY" | "shuffleP">): number {
  const { QS, VS, PS, Br } = fastDims(c);
  return 16 * (Br * QS + BC * QS + BC * VS + Br * PS) + 16;
}

const COMPS = ["x", "y", "z", "w"] as const;

/** The RT×4 score block s{r} (vec4 over keys tx + 8e) of the current tile: Q·Kᵀ from workgroup memory. */
function scoreBlock(RT: number, TY: number, HP4: number, QS: number): string {
  const l: string[] = [];
  for (let r = 0; r < RT; r++) l.push(`    var s${r} = vec4<f32>(0.0);`);
  l.push(`    for (var dv = 0u; dv < ${HP4}u; dv++) {`);
  for (let r = 0; r < RT; r++) l.push(`      let q${r} = Qs[(ty + ${r * TY}u) * ${QS}u + dv];`);
  for (let e = 0; e < 4; e++) l.push(`      let k${e} = Ks[(tx + ${e * TX}u) * ${QS}u + dv];`);
  // Transposed in registers (free): kt_x holds component x of the 4 keys, so each feature is one vec4 fma.
  for (const d of COMPS) l.push(`      let kt${d} = vec4<f32>(k0.${d}, k1.${d}, k2.${d}, k3.${d});`);
  for (let r = 0; r < RT; r++)
    for (const d of COMPS) l.push(`      s${r} = fma(vec4<f32>(q${r}.${d}), kt${d}, s${r});`);
  l.push("    }");
  return l.join("\n");
}

/**
 * Online softmax of row r over the tile: bias and masks, the block max and sum over the row group's 8 lanes
 * (subgroupShuffleXor, in uniform control flow), rescale of the row's accumulators, probabilities to Ps.
 */
function softmaxRow(c: FastConfig, r: number, NV: number, PS: number): string {
  const ablated = c.ablate === "softmax";
  const row = `ty + ${r * c.TY}u`;
  const writes = c.shuffleP
    ? [`      p${r} = p;`]
    : COMPS.map((d, e) => `      Ps[(${row}) * ${PS}u + tx / 4u + ${2 * e}u][tx % 4u] = p.${d};`);
  // The bias of each allowed key (masked keys are never read: their bias may be out of bounds).
  const bias = c.bias
    ? COMPS.map(
        (d, e) =>
          `      if (ok.${d}) { let j = k0 + tx + ${e * TX}u; var x = xs.${d}; ${biasRead(c)} xs.${d} = x; }`,
      ).join("\n")
    : "";
  return `    {
      let i = i${r};
      let limit = min(end${r}, k0 + ${BC}u);
      // Keys tx + 8e of the tile this row may read; the others are -inf (they never set the max).
      let ok = vec4<u32>(k0 + tx) + vec4<u32>(0u, ${TX}u, ${2 * TX}u, ${3 * TX}u) < vec4<u32>(limit);
      var xs = select(vec4<f32>(NEG_INF), s${r}, ok);
${bias}
      // NaN never compares greater, so like the CPU kernel it does not set the maximum.
      var bm = NEG_INF;
${COMPS.map((d) => `      bm = select(bm, xs.${d}, xs.${d} > bm);`).join("\n")}
      bm = max(bm, subgroupShuffleXor(bm, 1u));
      bm = max(bm, subgroupShuffleXor(bm, 2u));
      bm = max(bm, subgroupShuffleXor(bm, 4u));
      var f = 1.0;
      var p = vec4<f32>(0.0);
      if (bm > NEG_INF) {
        if (bm > m${r}) {
          if (l${r} != 0.0) { f = exp(m${r} - bm); }
          m${r} = bm;
        }
        p = select(vec4<f32>(0.0), ${ablated ? "xs" : `exp(xs - vec4<f32>(m${r}))`}, ok);
      }
      var ps = p.x + p.y + p.z + p.w;
      ps = ps + subgroupShuffleXor(ps, 1u);
      ps = ps + subgroupShuffleXor(ps, 2u);
      ps = ps + subgroupShuffleXor(ps, 4u);
      l${r} = ${ablated ? "1.0" : `l${r} * f + ps`};
${writes.join("\n")}
${Array.from({ length: NV }, (_, j) => `      o${r}_${j} *= f;`).join("\n")}
    }`;
}

/** O += P·V over the tile: RT rows × NV output vec4s (columns tx + 8j) per thread. */
function pvBlock(RT: number, TY: number, NV: number, VS: number, PS: number): string {
  const l = [`    for (var jv = 0u; jv < ${BC / 4}u; jv++) {`];
  for (let r = 0; r < RT; r++) l.push(`      let p${r} = Ps[(ty + ${r * TY}u) * ${PS}u + jv];`);
  for (let e = 0; e < 4; e++)
    for (let j = 0; j < NV; j++) {
      const col = `tx + ${j * TX}u`;
      const at = (cc: string) => `Vs[(jv * 4u + ${e}u) * ${VS}u + ${cc}]`;
      const guard = (j + 1) * TX > VS;
      l.push(
        `      { let vv = ${guard ? `select(vec4<f32>(0.0), ${at(`min(${col}, ${VS - 1}u)`)}, ${col} < ${VS}u)` : at(col)};`,
      );
      for (let r = 0; r < RT; r++)
        l.push(`        o${r}_${j} = fma(vec4<f32>(p${r}.${COMPS[e]}), vv, o${r}_${j});`);
      l.push("      }");
    }
  l.push("    }");
  return l.join("\n");
}

/**
 * O += P·V over the tile with P from registers: lane src of the row group holds keys src + 8e of each of its
 * rows (p{r}, a vec4 over e); every lane fetches them with subgroupShuffle (consecutive invocations: the row
 * group is lanes sgLane - tx .. + 7).
 */
function pvShuffleBlock(RT: number, NV: number, VS: number): string {
  const l = ["    for (var src = 0u; src < 8u; src++) {", "      let lane = sgLane - tx + src;"];
  for (let r = 0; r < RT; r++) l.push(`      let p${r}s = subgroupShuffle(p${r}, lane);`);
  for (let e = 0; e < 4; e++)
    for (let j = 0; j < NV; j++) {
      const col = `tx + ${j * TX}u`;
      const at = (cc: string) => `Vs[(src + ${e * TX}u) * ${VS}u + ${cc}]`;
      const guard = (j + 1) * TX > VS;
      l.push(
        `      { let vv = ${guard ? `select(vec4<f32>(0.0), ${at(`min(${col}, ${VS - 1}u)`)}, ${col} < ${VS}u)` : at(col)};`,
      );
      for (let r = 0; r < RT; r++)
        l.push(`        o${r}_${j} = fma(vec4<f32>(p${r}s.${COMPS[e]}), vv, o${r}_${j});`);
      l.push("      }");
    }
  l.push("    }");
  return l.join("\n");
}

export function fastAttentionSource(c: FastConfig): string {
  const { RT, TY } = c;
  const { QS, VS, PS, NV, Br, T } = fastDims(c);
  const loadRows = tileLoader(c, T);
  // Per row r of this thread: index, allowed keys end (0 past qLen; causal: i + offset + 1), running max
  // and sum (the same in all 8 lanes of the row group), output accumulators.
  const rows: string[] = [];
  for (let r = 0; r < RT; r++) {
    rows.push(`  let i${r} = rowBase + ty + ${r * TY}u;
  var end${r} = select(0u, kLen, i${r} < qLen);
  ${c.causal ? `end${r} = u32(clamp(i32(i${r}) + causalOff + 1, 0, i32(end${r})));` : ""}
  var m${r} = NEG_INF;
  var l${r} = 0.0;`);
    for (let j = 0; j < NV; j++) rows.push(`  var o${r}_${j} = vec4<f32>(0.0);`);
  }
  const soft = Array.from({ length: RT }, (_, r) => softmaxRow(c, r, NV, PS));
  const store = Array.from({ length: RT }, (_, r) =>
    storeRow(c, `ty + ${r * TY}u`, `l${r}`, (j) => `o${r}_${j}`, NV),
  );
  const pv = c.ablate !== "pv";
  const pvCode = !pv ? "" : c.shuffleP ? pvShuffleBlock(RT, NV, VS) : pvBlock(RT, TY, NV, VS, PS);
  const pVars = c.shuffleP ? Array.from({ length: RT }, (_, r) => `    var p${r} = vec4<f32>(0.0);`) : [];
  // K/V tiles through registers (vec4 rows only): the next tile's global loads overlap this tile's work.
  const prefetch = c.vec4 && c.prefetchKV !== false;
  const prefetcher = (x: "K" | "V", width: number, stride: number) =>
    tilePrefetcher(c, T, {
      name: `${x.toLowerCase()}pre`,
      dst: `${x}s`,
      src: x,
      rowsInTile: BC,
      width,
      stride,
      gbase: `${x.toLowerCase()}Base`,
      ss: `u.${x.toLowerCase()}SS`,
    });
  const pk = prefetch ? prefetcher("K", c.H, QS) : undefined;
  const pvv = prefetch ? prefetcher("V", c.HV, VS) : undefined;
  return `${attentionHead(c, true)}
var<workgroup> Qs: array<vec4<f32>, ${Br * QS}>;
var<workgroup> Ks: array<vec4<f32>, ${BC * QS}>;
var<workgroup> Vs: array<vec4<f32>, ${BC * VS}>;
${c.shuffleP ? "" : `var<workgroup> Ps: array<vec4<f32>, ${Br * PS}>;\n`}var<workgroup> wgKvEnd: u32;

@compute @workgroup_size(${TX}, ${TY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${c.shuffleP ? ", @builtin(subgroup_invocation_id) sgLane: u32" : ""}) {
${attentionPrologue(c, Br, T, QS)}
${rows.join("\n")}

${prefetch ? `${pk!.decl}\n${pvv!.decl}\n  {\n${pk!.fetch("0u", (r) => `${r} < kvEnd`)}\n  if (${pv}) {\n${pvv!.fetch("0u", (r) => `${r} < kvEnd`)}\n  }\n  }` : ""}
  for (var k0 = 0u; k0 < kvEnd; k0 += ${BC}u) {
    ${
      prefetch
        ? `// This tile from the registers, then the next tile's loads fly while this one is used.
${pk!.stash}
${pvv!.stash}
    workgroupBarrier();
    let kn = k0 + ${BC}u;
    if (${c.ablate === "loads" ? "false" : "kn < kvEnd"}) {
${pk!.fetch("kn", (r) => `kn + ${r} < kvEnd`)}
      // Ablated P·V: the V loads stay in the source (the binding must stay in the layout), never run.
      if (${pv}) {
${pvv!.fetch("kn", (r) => `kn + ${r} < kvEnd`)}
      }
    }`
        : `if (${c.ablate === "loads" ? "k0 == 0u" : "true"}) {
      let base = k0;
${loadRows("Ks", "K", BC, c.H, QS, "base + r < kvEnd", "kBase", "u.kSS", "")}
      // Ablated P·V: the V load stays in the source (the binding must stay in the layout), never runs.
      if (${pv}) {
${loadRows("Vs", "V", BC, c.HV, VS, "base + r < kvEnd", "vBase", "u.vSS", "")}
      }
    }
    workgroupBarrier();`
    }
${c.ablate === "qk" ? Array.from({ length: RT }, (_, r) => `    let s${r} = vec4<f32>(f32(k0 + ${r}u) * 1e-3);`).join("\n") : scoreBlock(RT, TY, round4(c.H) / 4, QS)}
${pVars.join("\n")}
${soft.join("\n")}
    ${c.shuffleP ? "// P stays in registers: no barrier before P·V." : "workgroupBarrier();"}
${pvCode}
    workgroupBarrier();
  }
${store.join("\n")}
}`;
}
