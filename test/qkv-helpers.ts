// Shared helpers of the qkv-*.test.ts files: fixture decoding and a plain float64 reference attention.
import { readFileSync } from "node:fs";
import { runGraph } from "../src/engine/executor.js";
import { GraphBuilder } from "../src/ir/builder.js";
import type { DType } from "../src/ir/dtype.js";
import { Tensor } from "../src/ir/tensor.js";

export const QKV_FIXTURE = new URL("../../shared/fixtures/qkv/qkv_public.json", import.meta.url);
export const BERT_EAGER = new URL("../../shared/fixtures/onnx/bert_eager.onnx", import.meta.url);

interface JsonArray {
  dtype: string;
  shape: number[];
  data: string;
}

export interface QkvCase {
  kind: "fixed" | "varseqlen" | "packing";
  note?: string;
  attrs: Record<string, number | boolean>;
  inputs: Record<string, JsonArray>;
  outputs: Record<string, JsonArray>;
  rows_compared?: JsonArray;
}

export function loadQkvCases(): Record<string, QkvCase> {
  return (JSON.parse(readFileSync(QKV_FIXTURE, "utf8")) as { cases: Record<string, QkvCase> }).cases;
}

/** Base64 little-endian bytes → Tensor (uint8 arrays become uint8 tensors). */
export function decodeArray(a: JsonArray): Tensor {
  const bytes = Buffer.from(a.data, "base64");
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const make: Record<string, () => Tensor> = {
    float32: () => new Tensor("float32", new Float32Array(buf), a.shape),
    int32: () => new Tensor("int32", new Int32Array(buf), a.shape),
    uint8: () => new Tensor("uint8", new Uint8Array(buf), a.shape),
  };
  const f = make[a.dtype];
  if (!f) throw new Error(`fixture dtype ${a.dtype} not handled`);
  return f();
}

/** Which keys each sequence attends to, which query rows are written, and the score scale. */
export interface ReferenceMask {
  /** Key j of sequence b takes part in the softmax. */
  key(b: number, j: number): boolean;
  /** Row i of sequence b is computed (false: left zero). */
  row(b: number, i: number): boolean;
  scale?: number;
}

/**
 * Float64 reference of the packed op, written from the contract and TensorRT's softmax (mhaRunner.cu,
 * common.cuh scaledSoftmax) and nothing else: per token the 3E axis is [N, 3, H]; every written row is a
 * softmax over its sequence's valid keys of q·k scaled by 1/√H; a row with no valid key is zero.
 */
export function referenceMasked(
  qkv: Float64Array,
  S: number,
  B: number,
  N: number,
  H: number,
  mask: ReferenceMask,
): Float64Array {
  const E = N * H;
  const scale = mask.scale ?? 1 / Math.sqrt(H);
  const out = new Float64Array(S * B * E);
  const at = (s: number, b: number, n: number, t: number, h: number) =>
    s * B * 3 * E + b * 3 * E + n * 3 * H + t * H + h;
  for (let b = 0; b < B; b++) {
    const keys = Array.from({ length: S }, (_, j) => j).filter((j) => mask.key(b, j));
    for (let n = 0; n < N; n++)
      for (let i = 0; i < S; i++) {
        if (!mask.row(b, i) || keys.length === 0) continue;
        const scores = keys.map((j) => {
          let d = 0;
          for (let h = 0; h < H; h++) d += qkv[at(i, b, n, 0, h)]! * qkv[at(j, b, n, 1, h)]!;
          return d * scale;
        });
        const m = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - m));
        const z = e.reduce((x, y) => x + y, 0);
        for (let h = 0; h < H; h++) {
          let acc = 0;
          keys.forEach((j, k) => {
            acc += (e[k]! / z) * qkv[at(j, b, n, 2, h)]!;
          });
          out[i * B * E + b * E + n * H + h] = acc;
        }
      }
  }
  return out;
}

/**
 * The reference with a lengths mask: keys j < len. Padded rows (i >= len) are computed as TensorRT computes
 * them unless `computePadded` is false (then zero); a length of 0 gives zero rows.
 */
export function referenceFixed(
  qkv: Float64Array,
  S: number,
  B: number,
  N: number,
  H: number,
  lengths?: number[],
  computePadded = true,
  scale?: number,
): Float64Array {
  const len = (b: number) => (lengths ? lengths[b]! : S);
  return referenceMasked(qkv, S, B, N, H, {
    key: (b, j) => j < len(b),
    row: (b, i) => computePadded || i < len(b),
    scale,
  });
}

/** Var-seqlen reference: each sequence is a fixed-length problem with S = its length and B = 1. */
export function referenceVarlen(
  qkv: Float64Array,
  cu: number[],
  N: number,
  H: number,
  scale?: number,
): Float64Array {
  const E = N * H;
  const out = new Float64Array(cu[cu.length - 1]! * E);
  for (let b = 0; b + 1 < cu.length; b++) {
    const len = cu[b + 1]! - cu[b]!;
    const part = referenceFixed(
      qkv.subarray(cu[b]! * 3 * E, cu[b + 1]! * 3 * E),
      len,
      1,
      N,
      H,
      undefined,
      true,
      scale,
    );
    out.set(part, cu[b]! * E);
  }
  return out;
}

export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function randomTensor(dtype: DType, dims: number[], seed: number, scale = 1): Tensor {
  let x = seed >>> 0 || 1;
  const n = dims.reduce((p, d) => p * d, 1);
  const vals = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    vals[i] = (((x >>> 0) / 2 ** 32) * 2 - 1) * scale;
  }
  return new Tensor(dtype, vals, dims);
}

/** Runs one node on the given inputs (undefined = omitted input) through the engine; returns its output. */
export function runSingle(
  opType: string,
  domain: string,
  attrs: Record<string, number | string>,
  inputs: (Tensor | undefined)[],
): Tensor {
  const b = new GraphBuilder({ opsets: domain ? { [domain]: 1 } : {} });
  const names = inputs.map((t, i) => {
    if (!t) return "";
    return b.input(`in${i}`, t.type, [...t.dims]);
  });
  const out = b.op(opType, names, attrs, { domain });
  b.output(out);
  const feeds = Object.fromEntries(inputs.flatMap((t, i) => (t ? [[`in${i}`, t]] : [])));
  return runGraph(b.build(), feeds).get(out)!;
}
