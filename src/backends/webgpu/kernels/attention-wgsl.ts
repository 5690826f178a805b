/**
 * WGSL pieces shared by the two SIMT flash-attention kernels (attention.ts: the workgroup-memory softmax;
 * attention-fast.ts: the subgroup softmax with 8-row register blocks): the uniform block, the bindings, the
 * tile loader, the per-workgroup prologue (batch, head, sequence window, key range, the scaled Q tile) and the
 * output store. Sharing them keeps the masks, lengths, var-seqlen and causal rules identical in both.
 */
import { type UniformFields, uniformStruct } from "../uniforms.js";
import { QKVO_LAYOUT_FIELDS } from "./attention-tc.js";
import { bindings, type StorageDecl } from "./common.js";

/** Keys per tile, in both kernels. */
export const BC = 32;
/** Threads along the key / output-column axis of a tile: each covers 4 keys and every 8th output vec4. */
export const TX = BC / 4;

/** What the shared pieces need of a kernel config. */
export interface AttentionIo {
  /** f16 storage of Q, K, V and O (bias stays f32), f32 math. */
  f16?: boolean;
  H: number;
  HV: number;
  /** Q, K, V and O rows vec4-aligned: loads and stores as vec4. */
  vec4: boolean;
  lengths: boolean;
  cu: boolean;
  causal: boolean;
  /** Causal offset per batch: its key length minus the query rows (FlashAttentionArgs.causalPerBatch). */
  causalPerBatch?: boolean;
  bias: boolean;
}

export const ATTENTION_FIELDS: UniformFields = [
  ["seqQ", "u32"],
  ["seqKV", "u32"],
  ["group", "u32"],
  ["scale", "f32"],
  ["causalOffset", "i32"],
  ...QKVO_LAYOUT_FIELDS,
  ["bOff", "u32"],
  ["bBS", "u32"],
  ["bHS", "u32"],
  ["bRS", "u32"],
  ["bKS", "u32"],
  ["negInf", "f32"],
];

export const round4 = (x: number) => (x + 3) & ~3;

/** The storage bindings in dispatch order: Q, K, V, [lengths], [cu], [bias], O. */
export function attentionDecls(c: AttentionIo): StorageDecl[] {
  const el = c.vec4 ? (c.f16 ? "vec4<f16>" : "vec4<f32>") : c.f16 ? "f16" : "f32";
  const decls: StorageDecl[] = [
    { name: "Q", type: el },
    { name: "K", type: el },
    { name: "V", type: el },
  ];
  if (c.lengths) decls.push({ name: "lengths", type: "i32" });
  if (c.cu) decls.push({ name: "cu", type: "i32" });
  if (c.bias) decls.push({ name: "bias" });
  decls.push({ name: "O", type: el, write: true });
  return decls;
}

/** f16 storage widened to f32 math (identity for f32). */
const widen = (c: AttentionIo, x: string) => (c.f16 ? `${c.vec4 ? "vec4<f32>" : "f32"}(${x})` : x);

/**
 * Column dv of row r of a swizzled tile (rows unpadded, vec4 columns XOR the row's low 3 bits: 8 consecutive
 * rows read at one column fall into distinct vec4 banks), or of a plain one.
 */
export const tileCol = (swizzle: boolean, r: string, dv: string) =>
  swizzle ? `((${dv}) ^ ((${r}) & 7u))` : dv;

/**
 * A tile loader for a workgroup of T threads: rows [0, count) of a tile from global rows (seqStart + base + r)
 * into a workgroup vec4 array `stride` vec4s per row, zeros where `valid` fails or past `width`; `swizzle`:
 * columns as tileCol places them.
 */
export function tileLoader(c: AttentionIo, T: number) {
  return (
    dst: string,
    src: string,
    rowsInTile: number,
    width: number,
    stride: number,
    valid: string,
    gbase: string,
    ss: string,
    scale: string,
    swizzle = false,
  ): string => {
    if (c.vec4) {
      const per = width / 4;
      return `  for (var e = tid; e < ${rowsInTile * per}u; e += ${T}u) {
    let r = e / ${per}u; let dv = e % ${per}u;
    var x = vec4<f32>(0.0);
    if (${valid}) { x = ${widen(c, `${src}[(${gbase} + (seqStart + base + r) * ${ss}) / 4u + dv]`)}${scale}; }
    ${dst}[r * ${stride}u + ${tileCol(swizzle, "r", "dv")}] = x;
  }`;
    }
    const wp = round4(width);
    return `  for (var e = tid; e < ${rowsInTile * wp}u; e += ${T}u) {
    let r = e / ${wp}u; let d = e % ${wp}u;
    var x = 0.0;
    if (d < ${width}u && ${valid}) { x = ${widen(c, `${src}[${gbase} + (seqStart + base + r) * ${ss} + d]`)}${scale}; }
    ${dst}[r * ${stride}u + ${tileCol(swizzle, "r", "d / 4u")}][d % 4u] = x;
  }`;
  };
}

/**
 * The vec4 tile loader split in two for register prefetch: `fetch` loads this thread's share of rows
 * [base, base + rowsInTile) into registers `{name}0..` (zeros past `valid`), `stash` stores them into the tile
 * `dst`; `decl` declares the registers. Thread tid takes the vec4s tid, tid + T, … of the tile.
 */
export function tilePrefetcher(
  c: AttentionIo,
  T: number,
  t: {
    name: string;
    dst: string;
    src: string;
    rowsInTile: number;
    width: number;
    stride: number;
    gbase: string;
    ss: string;
    swizzle?: boolean;
  },
) {
  const per = t.width / 4;
  const total = t.rowsInTile * per;
  const n = Math.ceil(total / T);
  const at = (i: number, body: (e: string) => string) =>
    `    { let e = ${i * T}u + tid;${total % T === 0 ? ` ${body("e")}` : ` if (e < ${total}u) { ${body("e")} }`} }`;
  return {
    decl: Array.from({ length: n }, (_, i) => `  var ${t.name}${i} = vec4<f32>(0.0);`).join("\n"),
    fetch: (base: string, valid: (r: string) => string) =>
      Array.from({ length: n }, (_, i) =>
        at(
          i,
          (e) =>
            `let r = ${e} / ${per}u; let dv = ${e} % ${per}u; ${t.name}${i} = vec4<f32>(0.0); if (${valid("r")}) { ${t.name}${i} = ${widen(c, `${t.src}[(${t.gbase} + (seqStart + ${base} + r) * ${t.ss}) / 4u + dv]`)}; }`,
        ),
      ).join("\n"),
    stash: Array.from({ length: n }, (_, i) =>
      at(
        i,
        (e) =>
          `${t.dst}[(${e} / ${per}u) * ${t.stride}u + ${tileCol(t.swizzle === true, `${e} / ${per}u`, `${e} % ${per}u`)}] = ${t.name}${i};`,
      ),
    ).join("\n"),
  };
}

/** The additive bias of score x at (b, n, i, j), where the config has one. */
export function biasRead(c: AttentionIo): string {
  return c.bias ? "x = x + bias[u.bOff + b * u.bBS + n * u.bHS + i * u.bRS + j * u.bKS];" : "";
}

/** `enable` lines, uniform struct and bindings. */
export function attentionHead(c: AttentionIo, subgroups: boolean): string {
  return `${c.f16 ? "enable f16;\n" : ""}${subgroups ? "enable subgroups;\n" : ""}${uniformStruct(ATTENTION_FIELDS)}${bindings(attentionDecls(c))}`;
}

/**
 * Per workgroup (threads tid = ty·TX + tx, T of them, Br query rows from rowBase): b, n, the sequence window,
 * bases, the keys this workgroup reads (kvEnd) and the scaled Q tile in Qs (QS vec4s per row; `swizzle`: as
 * tileCol places them). `kvWord`: a vec4 of workgroup memory that carries kvEnd (as an f32, exact below
 * 2^24) before its first use, instead of a word of its own (a kernel at the 48 KiB limit).
 */
export function attentionPrologue(
  c: AttentionIo,
  Br: number,
  T: number,
  QS: number,
  opts: { swizzle?: boolean; kvWord?: string } = {},
): string {
  const loadRows = tileLoader(c, T);
  const keyLen = c.cu ? "seqLen" : c.lengths ? "u32(clamp(lengths[b], 0, i32(u.seqKV)))" : "u.seqKV";
  return `  let tx = lid.x; let ty = lid.y; let tid = ty * ${TX}u + tx;
  let rowBase = wid.x * ${Br}u; let n = wid.y; let b = wid.z;
  let g = n / u.group;
  // -inf from a uniform: WGSL constant expressions cannot hold infinities.
  let NEG_INF = u.negInf;
  ${c.cu ? "let seqStart = u32(cu[b]); let seqLen = u32(cu[b + 1u]) - seqStart;" : "let seqStart = 0u;"}
  let qLen = ${c.cu ? "seqLen" : "u.seqQ"};
  let kLen = ${keyLen};
  // Key j is allowed for row i iff j <= i + causalOff: a uniform, or per batch its key length minus the
  // query rows (bottom-right aligned to each sequence's own keys: a KV cache of per-batch past lengths).
  let causalOff = ${c.causalPerBatch ? "i32(kLen) - i32(qLen)" : "u.causalOffset"};
  let qBase = u.qOff + b * u.qBS + n * u.qHS;
  let kBase = u.kOff + b * u.kBS + g * u.kHS;
  let vBase = u.vOff + b * u.vBS + g * u.vHS;
  let oBase = u.oOff + b * u.oBS + n * u.oHS;

  // Keys this workgroup reads: the longest allowed range of its live rows (uniform through workgroup memory,
  // so the tile loop and its barriers are in uniform control flow).
  if (tid == 0u) {
    var end = kLen;
    let lastRow = min(rowBase + ${Br}u, qLen);
    if (lastRow <= rowBase) { end = 0u; }
    ${c.causal ? "else { end = u32(clamp(i32(lastRow) - 1 + causalOff + 1, 0, i32(end))); }" : ""}
    ${opts.kvWord ? `${opts.kvWord} = vec4<f32>(f32(end));` : "wgKvEnd = end;"}
  }
  ${
    opts.kvWord
      ? `let kvEnd = u32(workgroupUniformLoad(&${opts.kvWord}).x);
  // Every thread has read the word before the tile it lives in is written.
  workgroupBarrier();`
      : "let kvEnd = workgroupUniformLoad(&wgKvEnd);"
  }
  {
    let base = rowBase;
${loadRows("Qs", "Q", Br, c.H, QS, "base + r < qLen", "qBase", "u.qSS", " * u.scale", opts.swizzle)}
  }`;
}

/**
 * Stores one output row `row` (of the workgroup tile) from accumulators acc(j), j < NV, holding vec4 columns
 * tx + TX·j, scaled by 1 / l (zeros where l = 0); rows past qLen are not written.
 */
export function storeRow(
  c: AttentionIo,
  row: string,
  l: string,
  acc: (j: number) => string,
  NV: number,
): string {
  const VS = round4(c.HV) / 4;
  const lines = [
    `  { let row = ${row}; let i = rowBase + row;
    if (i < qLen) {
      let l = ${l}; let inv = select(1.0 / l, 0.0, l == 0.0);
      let ob = oBase + (seqStart + i) * u.oSS;`,
  ];
  for (let j = 0; j < NV; j++) {
    const cv = `tx + ${j * TX}u`;
    const val = `select(${acc(j)} * inv, vec4<f32>(0.0), l == 0.0)`;
    if (c.vec4)
      lines.push(`      if (${cv} < ${VS}u) { O[ob / 4u + ${cv}] = ${c.f16 ? `vec4<f16>(${val})` : val}; }`);
    else
      lines.push(`      { let v = ${val}; let c0 = (${cv}) * 4u;
        for (var e = 0u; e < 4u; e++) { if (c0 + e < ${c.HV}u) { O[ob + c0 + e] = ${c.f16 ? "f16(v[e])" : "v[e]"}; } } }`);
  }
  lines.push("    }\n  }");
  return lines.join("\n");
}
