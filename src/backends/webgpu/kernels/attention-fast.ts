/**
 * The subgroup flash-attention kernel (float32 math; f32 or f16 storage): the default wherever the adapter has
 * subgroups of at least 8 invocations; attention.ts's workgroup-memory kernel is the fallback.
 *
 * Workgroup: TY row groups × TX = 8 lanes, Br = RT·TY query rows, key tiles of KT = 32 or 64 keys (keyTile).
 * Thread (ty, tx) owns the RT query rows ty + TY·r — interleaved, so the 4 row groups of a 32-wide subgroup
 * read 4 consecutive (bank-distinct) Q and P rows — and, in a key tile, the KT/8 keys tx + 8e, again
 * interleaved so the 8 lanes read 8 consecutive K rows. Row strides in workgroup memory are an odd number of
 * vec4s for the same reason, or (pack) rows are unpadded and their vec4 columns XOR-swizzled by the row's low 3
 * bits.
 *
 * Per key tile: the K and V tiles come from registers the previous tile's loads filled (prefetchKV; with
 * interleaveKV K and V in turn through one set), or are loaded right before use; each thread computes its
 * RT × KT/8 score block from vec4 reads (RT + KT/8 reads per 4·RT·KT/8 FMAs per 4 features); the online
 * softmax runs in registers, its row max and sum reduced over the row group's 8 lanes with subgroupShuffleXor
 * (8 consecutive invocations are in one subgroup where subgroups have ≥ 8 of them); then each thread adds P·V
 * into its RT rows × 4·NV output columns (NV = 2 at head size 64) and a barrier frees the tiles. The
 * probabilities reach P·V from the row group's lanes by subgroupShuffle (shuffleP), through a padded P tile,
 * or through the K tile's memory once Q·Kᵀ is done with it (pInK, where it fits; one more barrier). The
 * default layout is attention.ts FAST_LAYOUTS'. No serial per-row phase; both products use explicit vec4 fma
 * (no dot + add).
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
   * Keys per tile (default BC = 32): 4·KT/32 keys per lane (tx + 8e), so 64 halves the softmax's shuffles and
   * the barriers per key and gives Q·Kᵀ RT + 8 reads per 32·RT FMAs (instead of RT + 4 per 16·RT).
   */
  keyTile?: 32 | 64;
  /** The feature loop of Q·Kᵀ and the key loop of P·V written out (constant workgroup offsets). */
  unroll?: boolean;
  /**
   * Q and K rows unpadded, their vec4 columns XOR-swizzled by the row's low 3 bits instead (attention-wgsl.ts
   * tileCol; where round4(H) is a multiple of 32, else the padded rows), and the key-range word carried by the V tile:
   * 64 query rows and 64-key tiles with P by shuffle in exactly 48 KiB at head size 64.
   */
  pack?: boolean;
  /**
   * With the prefetch: K and V through registers in turn (one tile of registers instead of two): this tile's V
   * loads fly during Q·Kᵀ and the softmax and are stored before P·V, the next K's fly during P·V; 2 barriers per
   * tile with P by shuffle or through the P tile alike.
   */
  interleaveKV?: boolean;
  /**
   * P through a tile in the K tile's memory (once Q·Kᵀ is done with it: one more barrier per tile), its rows
   * unpadded with XOR-swizzled columns, where it fits (Br ≤ H, roughly): the P tile's reads instead of the
   * shuffles at no workgroup memory (with interleaveKV one more barrier again, before the next K tile's store).
   */
  pInK?: boolean;
  /**
   * Timing only (wrong results): drop a stage — the softmax's exp, P·V, the K/V tile loads after the first tile
   * ("loads"), or the Q·Kᵀ products ("qk", constant scores).
   */
  ablate?: "softmax" | "pv" | "loads" | "qk";
}

/** Odd, so rows read at the same time by consecutive lanes fall into distinct vec4 banks. */
const odd = (x: number) => x | 1;

type DimsOf = Pick<
  FastConfig,
  "H" | "HV" | "RT" | "TY" | "shuffleP" | "keyTile" | "pack" | "pInK" | "interleaveKV"
>;

function fastDims(c: DimsOf) {
  const KT = c.keyTile ?? BC; // keys per tile
  const H4 = round4(c.H) / 4;
  const swz = c.pack === true && H4 % 8 === 0; // swizzled Q and K rows
  const QS = swz ? H4 : odd(H4); // vec4s per Q/K row in workgroup memory
  const VS = round4(c.HV) / 4; // vec4s per V row (lanes read consecutive vec4s of one row: no padding)
  const Br = c.RT * c.TY;
  // P in the K tile: unpadded swizzled rows (KT / 4 ≥ 8 vec4s), where Br of them fit in KT rows of QS.
  const pInK = c.pInK === true && !c.shuffleP && Br * (KT / 4) <= KT * QS;
  const PS = c.shuffleP ? 0 : pInK ? KT / 4 : odd(KT / 4); // vec4s per P row
  // KG vec4 score groups per row and thread: keys tx + 8(4g + i), i < 4.
  return { KT, KG: KT / BC, swz, pInK, QS, VS, PS, NV: Math.ceil(VS / TX), Br, T: TX * c.TY };
}

/** Workgroup memory of a config, in bytes: Q, K, V and P tiles and the key-range word. */
export function fastAttentionSharedBytes(c: DimsOf): number {
  const { KT, QS, VS, PS, Br, pInK } = fastDims(c);
  return 16 * (Br * QS + KT * QS + KT * VS + (pInK ? 0 : Br * PS)) + (c.pack ? 0 : 16);
}

/** Whether a config puts P in the K tile's memory (FastConfig.pInK: only where it fits). */
export const fastPInK = (c: DimsOf): boolean => fastDims(c).pInK;

/**
 * The pipeline-cache key part of everything a config bakes into the WGSL beyond the I/O flags: row tile, rows a
 * thread and the layout options (interleaveKV as given: the source ignores it without the vec4 prefetch, so
 * such a key names the same WGSL as the key without it).
 */
export function fastAttentionKey(c: DimsOf & Pick<FastConfig, "prefetchKV" | "unroll">): string {
  const { Br, pInK } = fastDims(c);
  return `Br${Br}:sg1:rt${c.RT}${c.shuffleP ? ":shp" : ""}${c.prefetchKV === false ? ":nopf" : ""}${c.keyTile === 64 ? ":kt64" : ""}${c.unroll ? ":ur" : ""}${c.pack ? ":pk" : ""}${c.interleaveKV ? ":il" : ""}${pInK ? ":pink" : ""}`;
}

const COMPS = ["x", "y", "z", "w"] as const;
/** The column of vec4 `col` in row `row` of the P tile (swizzled where P lives in the K tile). */
const pCol = (pInK: boolean, row: string, col: string) => (pInK ? `((${col}) ^ ((${row}) & 7u))` : col);

/**
 * The RT×4·KG score block s{r}_{g} (vec4 over keys tx + 8(4g + i)) of the current tile: Q·Kᵀ from workgroup
 * memory; `unroll`: the feature loop written out, every read at a constant offset from its row's base.
 */
function scoreBlock(
  RT: number,
  TY: number,
  HP4: number,
  QS: number,
  KG: number,
  unroll: boolean,
  swz: boolean,
): string {
  const l: string[] = [];
  // Swizzled columns: the K rows tx + 8e all have low bits tx; the Q rows ty + TY·r those of qx{r}.
  const qcol = (r: number, dv: string) => (swz ? `(${dv} ^ qx${TY % 8 === 0 ? 0 : r})` : dv);
  const kcol = (dv: string) => (swz ? `(${dv} ^ tx)` : dv);
  if (swz)
    for (let r = 0; r < (TY % 8 === 0 ? 1 : RT); r++) l.push(`    let qx${r} = (ty + ${r * TY}u) & 7u;`);
  for (let r = 0; r < RT; r++) for (let g = 0; g < KG; g++) l.push(`    var s${r}_${g} = vec4<f32>(0.0);`);
  const body = (dv: string, q: (r: number) => string, k: (e: number) => string) => {
    const b: string[] = [];
    for (let r = 0; r < RT; r++) b.push(`      let q${r} = Qs[${q(r)} + ${qcol(r, dv)}];`);
    for (let g = 0; g < KG; g++) {
      for (let i = 0; i < 4; i++) b.push(`      let k${i} = Ks[${k(4 * g + i)} + ${kcol(dv)}];`);
      // Transposed in registers (free): kt_x holds component x of the 4 keys, so each feature is one vec4 fma.
      for (const d of COMPS) b.push(`      let kt${d} = vec4<f32>(k0.${d}, k1.${d}, k2.${d}, k3.${d});`);
      for (let r = 0; r < RT; r++)
        for (const d of COMPS) b.push(`      s${r}_${g} = fma(vec4<f32>(q${r}.${d}), kt${d}, s${r}_${g});`);
      if (g + 1 < KG) b.push("      {");
    }
    for (let g = 1; g < KG; g++) b.push("      }");
    return b;
  };
  if (unroll) {
    for (let r = 0; r < RT; r++) l.push(`    let qb${r} = (ty + ${r * TY}u) * ${QS}u;`);
    for (let e = 0; e < 4 * KG; e++) l.push(`    let kb${e} = (tx + ${e * TX}u) * ${QS}u;`);
    for (let dv = 0; dv < HP4; dv++)
      l.push(
        "    {",
        ...body(
          `${dv}u`,
          (r) => `qb${r}`,
          (e) => `kb${e}`,
        ),
        "    }",
      );
  } else {
    l.push(`    for (var dv = 0u; dv < ${HP4}u; dv++) {`);
    l.push(
      ...body(
        "dv",
        (r) => `(ty + ${r * TY}u) * ${QS}u`,
        (e) => `(tx + ${e * TX}u) * ${QS}u`,
      ),
    );
    l.push("    }");
  }
  return l.join("\n");
}

/**
 * Online softmax of row r over the tile: bias and masks, the block max and sum over the row group's 8 lanes
 * (subgroupShuffleXor, in uniform control flow), rescale of the row's accumulators, probabilities to Ps (or to
 * the registers p{r}_{g} with shuffleP).
 */
function softmaxRow(
  c: FastConfig,
  r: number,
  NV: number,
  PS: number,
  KT: number,
  KG: number,
  pInK: boolean,
): string {
  const ablated = c.ablate === "softmax";
  const row = `ty + ${r * c.TY}u`;
  const G = Array.from({ length: KG }, (_, g) => g);
  const writes = G.flatMap((g) =>
    c.shuffleP
      ? [`      p${r}_${g} = p_${g};`]
      : COMPS.map(
          (d, i) =>
            `      ${pInK ? "Ks" : "Ps"}[(${row}) * ${PS}u + ${pCol(pInK, row, `tx / 4u + ${2 * (4 * g + i)}u`)}][tx % 4u] = p_${g}.${d};`,
        ),
  );
  // The bias of each allowed key (masked keys are never read: their bias may be out of bounds).
  const bias = c.bias
    ? G.flatMap((g) =>
        COMPS.map(
          (d, i) =>
            `      if (ok_${g}.${d}) { let j = k0 + tx + ${(4 * g + i) * TX}u; var x = xs_${g}.${d}; ${biasRead(c)} xs_${g}.${d} = x; }`,
        ),
      ).join("\n")
    : "";
  return `    {
      let i = i${r};
      let limit = min(end${r}, k0 + ${KT}u);
      // Keys tx + 8e of the tile this row may read; the others are -inf (they never set the max).
${G.map((g) => `      let ok_${g} = vec4<u32>(k0 + tx) + vec4<u32>(${[0, 1, 2, 3].map((i) => `${(4 * g + i) * TX}u`).join(", ")}) < vec4<u32>(limit);\n      var xs_${g} = select(vec4<f32>(NEG_INF), s${r}_${g}, ok_${g});`).join("\n")}
${bias}
      // NaN never compares greater, so like the CPU kernel it does not set the maximum.
      var bm = NEG_INF;
${G.flatMap((g) => COMPS.map((d) => `      bm = select(bm, xs_${g}.${d}, xs_${g}.${d} > bm);`)).join("\n")}
      bm = max(bm, subgroupShuffleXor(bm, 1u));
      bm = max(bm, subgroupShuffleXor(bm, 2u));
      bm = max(bm, subgroupShuffleXor(bm, 4u));
      var f = 1.0;
${G.map((g) => `      var p_${g} = vec4<f32>(0.0);`).join("\n")}
      if (bm > NEG_INF) {
        if (bm > m${r}) {
          if (l${r} != 0.0) { f = exp(m${r} - bm); }
          m${r} = bm;
        }
${G.map((g) => `        p_${g} = select(vec4<f32>(0.0), ${ablated ? `xs_${g}` : `exp(xs_${g} - vec4<f32>(m${r}))`}, ok_${g});`).join("\n")}
      }
      var ps = ${G.map((g) => `p_${g}.x + p_${g}.y + p_${g}.z + p_${g}.w`).join(" + ")};
      ps = ps + subgroupShuffleXor(ps, 1u);
      ps = ps + subgroupShuffleXor(ps, 2u);
      ps = ps + subgroupShuffleXor(ps, 4u);
      l${r} = ${ablated ? "1.0" : `l${r} * f + ps`};
${writes.join("\n")}
${Array.from({ length: NV }, (_, j) => `      o${r}_${j} *= f;`).join("\n")}
    }`;
}

/** The fmas of one V row (row `vrow` of the tile, probabilities p(r)) into the RT × NV accumulators. */
function pvRow(RT: number, NV: number, VS: number, vrow: string, p: (r: number) => string): string[] {
  const l: string[] = [];
  for (let j = 0; j < NV; j++) {
    const col = `tx + ${j * TX}u`;
    const at = (cc: string) => `Vs[${vrow} * ${VS}u + ${cc}]`;
    const guard = (j + 1) * TX > VS;
    l.push(
      `      { let vv = ${guard ? `select(vec4<f32>(0.0), ${at(`min(${col}, ${VS - 1}u)`)}, ${col} < ${VS}u)` : at(col)};`,
    );
    for (let r = 0; r < RT; r++) l.push(`        o${r}_${j} = fma(vec4<f32>(${p(r)}), vv, o${r}_${j});`);
    l.push("      }");
  }
  return l;
}

/** O += P·V over the tile: RT rows × NV output vec4s (columns tx + 8j) per thread; P from the P tile. */
function pvBlock(
  RT: number,
  TY: number,
  NV: number,
  VS: number,
  PS: number,
  KT: number,
  unroll: boolean,
  pInK: boolean,
): string {
  const body = (jv: string) => {
    const l: string[] = [];
    for (let r = 0; r < RT; r++)
      l.push(`      let p${r} = ${pInK ? "Ks" : "Ps"}[pb${r} + ${pInK ? `(${jv} ^ px${r})` : jv}];`);
    for (let e = 0; e < 4; e++)
      l.push(...pvRow(RT, NV, VS, `(${jv} * 4u + ${e}u)`, (r) => `p${r}.${COMPS[e]}`));
    return l;
  };
  const l: string[] = [];
  for (let r = 0; r < RT; r++) l.push(`    let pb${r} = (ty + ${r * TY}u) * ${PS}u;`);
  if (pInK) for (let r = 0; r < RT; r++) l.push(`    let px${r} = (ty + ${r * TY}u) & 7u;`);
  if (unroll) for (let jv = 0; jv < KT / 4; jv++) l.push("    {", ...body(`${jv}u`), "    }");
  else l.push(`    for (var jv = 0u; jv < ${KT / 4}u; jv++) {`, ...body("jv"), "    }");
  return l.join("\n");
}

/**
 * O += P·V over the tile with P from registers: lane src of the row group holds keys src + 8(4g + i) of each
 * of its rows (p{r}_{g}, a vec4 over i); every lane fetches them with subgroupShuffle (consecutive
 * invocations: the row group is lanes sgLane - tx .. + 7).
 */
function pvShuffleBlock(RT: number, NV: number, VS: number, KG: number, unroll: boolean): string {
  const body = (src: string) => {
    const l = [`      let lane = sgLane - tx + ${src};`];
    for (let r = 0; r < RT; r++)
      for (let g = 0; g < KG; g++) l.push(`      let p${r}_${g}s = subgroupShuffle(p${r}_${g}, lane);`);
    for (let e = 0; e < 4 * KG; e++)
      l.push(...pvRow(RT, NV, VS, `(${src} + ${e * TX}u)`, (r) => `p${r}_${e >> 2}s.${COMPS[e & 3]}`));
    return l;
  };
  if (unroll)
    return Array.from({ length: TX }, (_, s) => ["    {", ...body(`${s}u`), "    }"].join("\n")).join("\n");
  return [`    for (var src = 0u; src < ${TX}u; src++) {`, ...body("src"), "    }"].join("\n");
}

export function fastAttentionSource(c: FastConfig): string {
  const { RT, TY } = c;
  const { KT, KG, swz, pInK, QS, VS, PS, NV, Br, T } = fastDims(c);
  const unroll = c.unroll === true;
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
  const soft = Array.from({ length: RT }, (_, r) => softmaxRow(c, r, NV, PS, KT, KG, pInK));
  const store = Array.from({ length: RT }, (_, r) =>
    storeRow(c, `ty + ${r * TY}u`, `l${r}`, (j) => `o${r}_${j}`, NV),
  );
  const pv = c.ablate !== "pv";
  const pvCode = !pv
    ? ""
    : c.shuffleP
      ? pvShuffleBlock(RT, NV, VS, KG, unroll)
      : pvBlock(RT, TY, NV, VS, PS, KT, unroll, pInK);
  const pVars = c.shuffleP
    ? Array.from({ length: RT * KG }, (_, x) => `    var p${Math.floor(x / KG)}_${x % KG} = vec4<f32>(0.0);`)
    : [];
  // K/V tiles through registers (vec4 rows only): the next tile's global loads overlap this tile's work.
  const prefetch = c.vec4 && c.prefetchKV !== false;
  const prefetcher = (x: "K" | "V", width: number, stride: number) =>
    tilePrefetcher(c, T, {
      name: `${x.toLowerCase()}pre`,
      dst: `${x}s`,
      src: x,
      rowsInTile: KT,
      width,
      stride,
      gbase: `${x.toLowerCase()}Base`,
      ss: `u.${x.toLowerCase()}SS`,
      swizzle: swz && x === "K",
    });
  const pk = prefetch ? prefetcher("K", c.H, QS) : undefined;
  const pvv = prefetch ? prefetcher("V", c.HV, VS) : undefined;
  const scores =
    c.ablate === "qk"
      ? Array.from(
          { length: RT * KG },
          (_, x) => `    let s${Math.floor(x / KG)}_${x % KG} = vec4<f32>(f32(k0 + ${x}u) * 1e-3);`,
        ).join("\n")
      : scoreBlock(RT, TY, round4(c.H) / 4, QS, KG, unroll, swz);
  const fetchNext = (p: ReturnType<typeof prefetcher>) => p.fetch("kn", (r) => `kn + ${r} < kvEnd`);
  const noLoads = c.ablate === "loads";
  let loop: string;
  if (prefetch && c.interleaveKV) {
    // One tile of registers: V's loads fly during Q·Kᵀ and the softmax, the next K's during P·V.
    loop = `${pk!.decl}
${pvv!.decl}
  {
${pk!.fetch("0u", (r) => `${r} < kvEnd`)}
${pk!.stash}
    if (${pv}) {
${pvv!.fetch("0u", (r) => `${r} < kvEnd`)}
    }
  }
  workgroupBarrier();
  for (var k0 = 0u; k0 < kvEnd; k0 += ${KT}u) {
${scores}
${pInK ? "    // P goes where K was: every thread's Q·Kᵀ first.\n    workgroupBarrier();" : ""}
${pVars.join("\n")}
${soft.join("\n")}
    // Vs is free (P·V of the last tile is behind the last barrier); Ks once every thread passes this one.
    if (${pv}) {
${pvv!.stash}
    }
    workgroupBarrier();
    let kn = k0 + ${KT}u;
    let hasNext = kn < kvEnd;
    if (${noLoads ? "false" : "hasNext"}) {
${fetchNext(pk!)}
    }
${pvCode}
${pInK ? "    // The next K tile goes where P is: every thread's P·V first.\n    workgroupBarrier();" : ""}
    if (hasNext) {
${pk!.stash}
      // Ablated P·V: the V loads stay in the source (the binding must stay in the layout), never run.
      if (${noLoads ? "false" : pv}) {
${fetchNext(pvv!)}
      }
    }
    workgroupBarrier();
  }`;
  } else
    loop = `${prefetch ? `${pk!.decl}\n${pvv!.decl}\n  {\n${pk!.fetch("0u", (r) => `${r} < kvEnd`)}\n  if (${pv}) {\n${pvv!.fetch("0u", (r) => `${r} < kvEnd`)}\n  }\n  }` : ""}
  for (var k0 = 0u; k0 < kvEnd; k0 += ${KT}u) {
    ${
      prefetch
        ? `// This tile from the registers, then the next tile's loads fly while this one is used.
${pk!.stash}
${pvv!.stash}
    workgroupBarrier();
    let kn = k0 + ${KT}u;
    if (${noLoads ? "false" : "kn < kvEnd"}) {
${fetchNext(pk!)}
      // Ablated P·V: the V loads stay in the source (the binding must stay in the layout), never run.
      if (${pv}) {
${fetchNext(pvv!)}
      }
    }`
        : `if (${noLoads ? "k0 == 0u" : "true"}) {
      let base = k0;
${loadRows("Ks", "K", KT, c.H, QS, "base + r < kvEnd", "kBase", "u.kSS", "", swz)}
      // Ablated P·V: the V load stays in the source (the binding must stay in the layout), never runs.
      if (${pv}) {
${loadRows("Vs", "V", KT, c.HV, VS, "base + r < kvEnd", "vBase", "u.vSS", "")}
      }
    }
    workgroupBarrier();`
    }
${scores}
${pInK ? "    // P goes where K was: every thread's Q·Kᵀ first.\n    workgroupBarrier();" : ""}
${pVars.join("\n")}
${soft.join("\n")}
    ${c.shuffleP ? "// P stays in registers: no barrier before P·V." : "workgroupBarrier();"}
${pvCode}
    workgroupBarrier();
  }`;
  return `${attentionHead(c, true)}
var<workgroup> Qs: array<vec4<f32>, ${Br * QS}>;
var<workgroup> Ks: array<vec4<f32>, ${KT * QS}>;
var<workgroup> Vs: array<vec4<f32>, ${KT * VS}>;
${c.shuffleP || pInK ? "" : `var<workgroup> Ps: array<vec4<f32>, ${Br * PS}>;\n`}${c.pack ? "" : "var<workgroup> wgKvEnd: u32;"}

@compute @workgroup_size(${TX}, ${TY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${c.shuffleP ? ", @builtin(subgroup_invocation_id) sgLane: u32" : ""}) {
${attentionPrologue(c, Br, T, QS, { swizzle: swz, kvWord: c.pack ? "Vs[0]" : undefined })}
${rows.join("\n")}

${loop}
${store.join("\n")}
}`;
}
