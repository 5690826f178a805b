import { OpError } from "../errors.js";
import type { Dim, Node } from "../ir/graph.js";
import { sizeOf, stridesOf, type Tensor } from "../ir/tensor.js";
import { computeOf, type OpCompute } from "./compute.js";
import { float32Data, floatTensor, tensorFromFloat64 } from "./float-data.js";
import { attrString, type OpDef, registerOps } from "./registry.js";

/**
 * An einsum equation resolved against operand ranks. Labels are numbers: letters keep their char code;
 * dims covered by "..." get labels from ELLIPSIS_BASE up, right-aligned across operands so they broadcast.
 */
export interface EinsumSpec {
  inputs: number[][];
  output: number[];
}

const ELLIPSIS_BASE = 1000;

function parseTerm(
  node: Node,
  term: string,
  rank: number | undefined,
): { labels: number[]; ellipsis: number } {
  const at = term.indexOf("...");
  const letters = at < 0 ? term : term.slice(0, at) + term.slice(at + 3);
  if (!/^[A-Za-z]*$/.test(letters)) throw new OpError(node, `bad einsum term '${term}'`);
  const ellipsis = at < 0 ? 0 : (rank ?? letters.length) - letters.length;
  if (ellipsis < 0 || (at < 0 && rank !== undefined && rank !== letters.length)) {
    throw new OpError(node, `einsum term '${term}' does not match an operand of rank ${rank}`);
  }
  const codes = [...letters].map((ch) => ch.charCodeAt(0));
  const labels =
    at < 0 ? codes : [...codes.slice(0, at), ...new Array<number>(ellipsis).fill(-1), ...codes.slice(at)];
  return { labels, ellipsis };
}

export function parseEinsum(node: Node, equation: string, ranks: readonly number[]): EinsumSpec {
  const eq = equation.replace(/\s+/g, "");
  const arrow = eq.indexOf("->");
  const lhs = arrow < 0 ? eq : eq.slice(0, arrow);
  const terms = lhs.split(",");
  if (terms.length !== ranks.length) {
    throw new OpError(
      node,
      `equation '${equation}' has ${terms.length} operands, the node has ${ranks.length}`,
    );
  }
  const parsed = terms.map((t, i) => parseTerm(node, t, ranks[i]));
  const maxEllipsis = Math.max(0, ...parsed.map((p) => p.ellipsis));
  const inputs = parsed.map(({ labels, ellipsis }) => {
    let j = maxEllipsis - ellipsis;
    return labels.map((l) => (l < 0 ? ELLIPSIS_BASE + j++ : l));
  });
  const ellipsisLabels = Array.from({ length: maxEllipsis }, (_, j) => ELLIPSIS_BASE + j);
  let output: number[];
  if (arrow >= 0) {
    const rhs = eq.slice(arrow + 2);
    const { labels } = parseTerm(node, rhs, undefined);
    output = labels.flatMap((l) => (l < 0 ? [] : [l]));
    const at = rhs.indexOf("...");
    if (at >= 0) output.splice(rhs.slice(0, at).length, 0, ...ellipsisLabels);
    const seen = new Set<number>();
    for (const l of output) {
      if (seen.has(l)) throw new OpError(node, `output label '${String.fromCharCode(l)}' repeats`);
      if (!inputs.some((ls) => ls.includes(l))) {
        throw new OpError(node, `output label '${String.fromCharCode(l)}' is not in any input`);
      }
      seen.add(l);
    }
  } else {
    // Implicit output: broadcast dims first, then the letters used exactly once, alphabetically.
    const counts = new Map<number, number>();
    for (const ls of inputs)
      for (const l of ls) if (l < ELLIPSIS_BASE) counts.set(l, (counts.get(l) ?? 0) + 1);
    const once = [...counts].filter(([, c]) => c === 1).map(([l]) => l);
    output = [...ellipsisLabels, ...once.sort((a, b) => a - b)];
  }
  return { inputs, output };
}

/** Size of every label; operands must agree, except that a 1 broadcasts under "...". */
function labelSizes(
  node: Node,
  spec: EinsumSpec,
  shapes: readonly (readonly number[])[],
): Map<number, number> {
  const sizes = new Map<number, number>();
  spec.inputs.forEach((labels, i) => {
    labels.forEach((l, d) => {
      const dim = shapes[i]![d]!;
      const known = sizes.get(l);
      if (known === undefined || known === dim || (l >= ELLIPSIS_BASE && known === 1)) sizes.set(l, dim);
      else if (!(l >= ELLIPSIS_BASE && dim === 1)) {
        throw new OpError(node, `einsum dimension mismatch (${known} vs ${dim}) for operand ${i}`);
      }
    });
  });
  return sizes;
}

/** Reference evaluation: one odometer over every label (output labels, then summed ones), any dtype. */
function einsumReference(spec: EinsumSpec, operands: readonly Tensor[], sizes: Map<number, number>) {
  const summed = [...sizes.keys()].filter((l) => !spec.output.includes(l));
  const order = [...spec.output, ...summed];
  const dims = order.map((l) => sizes.get(l)!);
  // strides[op][d]: how far operand op moves when label order[d] steps (repeated labels add up: diagonals).
  const strides = operands.map((t, i) => {
    const own = stridesOf(t.dims);
    return order.map((l) =>
      spec.inputs[i]!.reduce((s, li, d) => (li === l && t.dims[d]! !== 1 ? s + own[d]! : s), 0),
    );
  });
  const data = operands.map((t) => t.toFloat64());
  const outDims = spec.output.map((l) => sizes.get(l)!);
  const out = new Float64Array(sizeOf(outDims));
  const sumSize = sizeOf(summed.map((l) => sizes.get(l)!));
  const total = out.length * sumSize;
  const idx = new Array<number>(order.length).fill(0);
  const offsets = new Array<number>(operands.length).fill(0);
  for (let flat = 0; flat < total; flat++) {
    let prod = 1;
    for (let op = 0; op < data.length; op++) prod *= data[op]![offsets[op]!]!;
    out[Math.floor(flat / sumSize)] += prod;
    for (let d = order.length - 1; d >= 0; d--) {
      if (++idx[d]! < dims[d]!) {
        for (let op = 0; op < offsets.length; op++) offsets[op] += strides[op]![d]!;
        break;
      }
      for (let op = 0; op < offsets.length; op++) offsets[op] -= strides[op]![d]! * (dims[d]! - 1);
      idx[d] = 0;
    }
  }
  return { out, outDims };
}

/** Row-major transpose: result axis i is source axis perm[i]. */
function permute(src: Float32Array, dims: readonly number[], perm: readonly number[]): Float32Array {
  const out = new Float32Array(src.length);
  const srcStrides = stridesOf(dims);
  const outDims = perm.map((p) => dims[p]!);
  const stepOf = perm.map((p) => srcStrides[p]!);
  const idx = new Array<number>(perm.length).fill(0);
  let off = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = src[off]!;
    for (let d = perm.length - 1; d >= 0; d--) {
      if (++idx[d]! < outDims[d]!) {
        off += stepOf[d]!;
        break;
      }
      off -= stepOf[d]! * (outDims[d]! - 1);
      idx[d] = 0;
    }
  }
  return out;
}

const sameOrder = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Two float operands whose labels split into batch (both + output), m (A + output), n (B + output) and k
 * (both, summed) — "bij,bjk->bik", "bhid,bhjd->bhij" and every other matmul in disguise — run as a batched
 * GEMM; transposed operands use the kernel's trans flags instead of a copy when the layout allows.
 * Returns undefined when the equation is not of that form.
 */
function einsumAsGemm(
  spec: EinsumSpec,
  a: Tensor,
  b: Tensor,
  sizes: Map<number, number>,
  compute: OpCompute,
) {
  const [la, lb] = spec.inputs as [number[], number[]];
  const out = spec.output;
  if (new Set(la).size !== la.length || new Set(lb).size !== lb.length) return undefined;
  if (la.some((l, d) => a.dims[d] !== sizes.get(l)) || lb.some((l, d) => b.dims[d] !== sizes.get(l))) {
    return undefined; // broadcasting of size-1 dims
  }
  if (la.some((l) => !lb.includes(l) && !out.includes(l))) return undefined;
  if (lb.some((l) => !la.includes(l) && !out.includes(l))) return undefined;
  const batch = out.filter((l) => la.includes(l) && lb.includes(l));
  const m = la.filter((l) => out.includes(l) && !lb.includes(l));
  const n = lb.filter((l) => out.includes(l) && !la.includes(l));
  const k = la.filter((l) => lb.includes(l) && !out.includes(l));
  const size = (ls: number[]) => sizeOf(ls.map((l) => sizes.get(l)!));
  const [B, M, N, K] = [size(batch), size(m), size(n), size(k)];

  let A32 = float32Data(a);
  let transA = false;
  if (sameOrder(la, [...batch, ...k, ...m]) && !sameOrder(la, [...batch, ...m, ...k])) transA = true;
  else if (!sameOrder(la, [...batch, ...m, ...k])) {
    A32 = permute(
      A32,
      a.dims,
      [...batch, ...m, ...k].map((l) => la.indexOf(l)),
    );
  }
  let B32 = float32Data(b);
  let transB = false;
  if (sameOrder(lb, [...batch, ...n, ...k]) && !sameOrder(lb, [...batch, ...k, ...n])) transB = true;
  else if (!sameOrder(lb, [...batch, ...k, ...n])) {
    B32 = permute(
      B32,
      b.dims,
      [...batch, ...k, ...n].map((l) => lb.indexOf(l)),
    );
  }
  const C = new Float32Array(B * M * N);
  for (let i = 0; i < B; i++) {
    compute.gemm([
      {
        transA,
        transB,
        M,
        N,
        K,
        alpha: 1,
        A: A32,
        aOffset: i * M * K,
        lda: transA ? M : K,
        B: B32,
        bOffset: i * K * N,
        ldb: transB ? K : N,
        beta: 0,
        C,
        cOffset: i * M * N,
        ldc: N,
      },
    ]);
  }
  const natural = [...batch, ...m, ...n];
  const outDims = out.map((l) => sizes.get(l)!);
  if (sameOrder(natural, out)) return { out: C, outDims };
  const perm = out.map((l) => natural.indexOf(l));
  return {
    out: permute(
      C,
      natural.map((l) => sizes.get(l)!),
      perm,
    ),
    outDims,
  };
}

function einsumShape(node: Node, shapes: readonly (readonly Dim[])[]): Dim[] {
  const spec = parseEinsum(
    node,
    attrString(node, "equation"),
    shapes.map((s) => s.length),
  );
  const dims = new Map<number, Dim>();
  // Prefer a concrete non-1 size, then a symbol, for each label (a 1 under "..." broadcasts).
  spec.inputs.forEach((labels, i) => {
    labels.forEach((l, d) => {
      const dim = shapes[i]![d]!;
      const known = dims.get(l);
      if (known === undefined || known === 1 || (known === null && dim !== 1)) dims.set(l, dim);
    });
  });
  return spec.output.map((l) => dims.get(l) ?? null);
}

const Einsum: OpDef = {
  opType: "Einsum",
  inferTypes(ctx) {
    const dtype = ctx.inputs[0]?.dtype ?? "float32";
    const shapes = ctx.inputs.map((t) => t?.shape);
    if (!shapes.every((s): s is Dim[] => s !== undefined)) return [{ dtype }];
    return [{ dtype, shape: einsumShape(ctx.node, shapes) }];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    if (inputs.length === 0 || inputs.some((t) => !t)) throw new OpError(node, "Einsum needs its operands");
    const operands = inputs as Tensor[];
    const type = operands[0]!.type;
    if (operands.some((t) => t.type !== type)) throw new OpError(node, "operand types differ");
    const spec = parseEinsum(
      node,
      attrString(node, "equation"),
      operands.map((t) => t.rank),
    );
    const sizes = labelSizes(
      node,
      spec,
      operands.map((t) => t.dims),
    );
    if (operands.length === 2 && (type === "float32" || type === "float16")) {
      const viaGemm = einsumAsGemm(spec, operands[0]!, operands[1]!, sizes, computeOf(ctx));
      if (viaGemm) return [floatTensor(type, viaGemm.out, viaGemm.outDims)];
    }
    const { out, outDims } = einsumReference(spec, operands, sizes);
    return [tensorFromFloat64(type, out, outDims)];
  },
};

export const einsumOps: readonly OpDef[] = [Einsum];
registerOps(einsumOps);
