import { OpError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import type { Dim, Node } from "../ir/graph.js";
import { broadcastDims, broadcastSymbolic } from "../ir/shape.js";
import { sizeOf, stridesOf, type Tensor } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import { geluErf, geluTanh } from "./elementwise-util.js";
import { type FloatDType, float32Data, floatTensor, tensorFromFloat64 } from "./float-data.js";
import type { GemmActivation, GemmProblem } from "./gemm-problem.js";
import { attrFloat, attrInt, type OpContext, type OpDef, registerOps } from "./registry.js";

const MATMUL_TYPES: readonly DType[] = ["float32", "float16", "float64", "int32", "int64"];

function requireMatmulType(node: Node, type: DType): void {
  if (!MATMUL_TYPES.includes(type)) throw new OpError(node, `unsupported element type ${type}`);
}

/**
 * C[M×N] += A[M×K]·B[K×N] for row-major float64 matrices at the given offsets; the reference path for
 * dtypes the float32 GEMM does not cover (float64 keeps full precision, integers stay exact below 2^53).
 */
export function naiveMatmul(
  M: number,
  N: number,
  K: number,
  A: Float64Array,
  aOffset: number,
  B: Float64Array,
  bOffset: number,
  C: Float64Array,
  cOffset: number,
): void {
  for (let i = 0; i < M; i++) {
    const cRow = cOffset + i * N;
    for (let k = 0; k < K; k++) {
      const a = A[aOffset + i * K + k]!;
      if (a === 0) continue;
      const bRow = bOffset + k * N;
      for (let j = 0; j < N; j++) C[cRow + j] += a * B[bRow + j]!;
    }
  }
}

/**
 * For each flat index of `outBatch`, the flat index of the (broadcast) input batch `inBatch` it reads.
 * `inBatch` is right-aligned against `outBatch` and may hold 1s that broadcast.
 */
export function broadcastIndexMap(outBatch: readonly number[], inBatch: readonly number[]): Int32Array {
  const n = sizeOf(outBatch);
  const map = new Int32Array(n);
  const rank = outBatch.length;
  const inStrides = stridesOf(inBatch);
  const lead = rank - inBatch.length;
  const idx = new Array<number>(rank).fill(0);
  for (let flat = 0; flat < n; flat++) {
    let off = 0;
    for (let d = lead; d < rank; d++) if (inBatch[d - lead] !== 1) off += idx[d]! * inStrides[d - lead]!;
    map[flat] = off;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < outBatch[d]!) break;
      idx[d] = 0;
    }
  }
  return map;
}

/** numpy.matmul output shape (symbolic); undefined when ranks are unknown or dims provably mismatch. */
export function matmulShape(a: readonly Dim[], b: readonly Dim[]): Dim[] | undefined {
  if (a.length === 0 || b.length === 0) return undefined;
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const ka = a2[a2.length - 1]!;
  const kb = b2[b2.length - 2]!;
  if (typeof ka === "number" && typeof kb === "number" && ka !== kb) return undefined;
  const batch = broadcastSymbolic(a2.slice(0, -2), b2.slice(0, -2));
  if (!batch) return undefined;
  const out = [...batch];
  if (a.length > 1) out.push(a2[a2.length - 2]!);
  if (b.length > 1) out.push(b2[b2.length - 1]!);
  return out;
}

export interface MatmulPlan {
  batch: number[];
  M: number;
  N: number;
  K: number;
  outDims: number[];
  aBatch: number[];
  bBatch: number[];
}

export function planMatmul(node: Node, a: readonly number[], b: readonly number[]): MatmulPlan {
  if (a.length === 0 || b.length === 0) throw new OpError(node, "MatMul inputs must have rank ≥ 1");
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const M = a2[a2.length - 2]!;
  const K = a2[a2.length - 1]!;
  const N = b2[b2.length - 1]!;
  if (b2[b2.length - 2] !== K) {
    throw new OpError(node, `inner dimensions differ: A is [${a}], B is [${b}]`);
  }
  const aBatch = a2.slice(0, -2);
  const bBatch = b2.slice(0, -2);
  const batch = broadcastDims(aBatch, bBatch);
  if (!batch) throw new OpError(node, `batch dimensions do not broadcast: A is [${a}], B is [${b}]`);
  const outDims = [...batch];
  if (a.length > 1) outDims.push(M);
  if (b.length > 1) outDims.push(N);
  return { batch, M, N, K, outDims, aBatch, bBatch };
}

/**
 * A float32 (or float16, computed in float32) MatMul or Gemm reduced to GEMM problems writing `output`:
 * what the contract hands whoever runs the arithmetic (the reference, or a backend that may run it async).
 */
export interface GemmCall {
  problems: GemmProblem[];
  /** The output tensor, once the problems ran (float16 is converted from C here). */
  output(): Tensor;
}

/** Batched float32 matmul as GEMM problems over a C from `ctx`'s allocator. */
function matmulFloat32Call(ctx: OpContext, p: MatmulPlan, a: Tensor, b: Tensor): GemmCall {
  const { M, N, K } = p;
  const A = float32Data(a);
  const B = float32Data(b);
  const C = computeOf(ctx).allocFloat32(sizeOf(p.outDims));
  const type = a.type as FloatDType;
  const output = () => floatTensor(type, C, p.outDims);
  const base = { transA: false, transB: false, M, N, K, alpha: 1, A, lda: K, B, ldb: N, beta: 0, C, ldc: N };
  // A stack of rows times one weight matrix (every Linear layer): fold A's batch into M, one GEMM call.
  if (sizeOf(p.bBatch) === 1 && sizeOf(p.aBatch) === sizeOf(p.batch)) {
    return { problems: [{ ...base, M: sizeOf(p.batch) * M, aOffset: 0, bOffset: 0, cOffset: 0 }], output };
  }
  const aMap = broadcastIndexMap(p.batch, p.aBatch);
  const bMap = broadcastIndexMap(p.batch, p.bBatch);
  // One run for the whole batch (attention scores, context): each matrix of C is a problem.
  const problems: GemmProblem[] = [];
  for (let i = 0; i < aMap.length; i++) {
    problems.push({ ...base, aOffset: aMap[i]! * M * K, bOffset: bMap[i]! * K * N, cOffset: i * M * N });
  }
  return { problems, output };
}

function checkMatmulInputs(node: Node, a: Tensor | undefined, b: Tensor | undefined): asserts b is Tensor {
  if (!a || !b) throw new OpError(node, "MatMul needs two inputs");
  if (a.type !== b.type) throw new OpError(node, `input types differ: ${a.type} and ${b.type}`);
  requireMatmulType(node, a.type);
}

/** MatMul's float32/float16 inputs as GEMM problems; undefined for the other dtypes (float64 reference). */
export function matmulGemmCall(ctx: OpContext, [a, b]: (Tensor | undefined)[]): GemmCall | undefined {
  checkMatmulInputs(ctx.node, a, b);
  if (a!.type !== "float32" && a!.type !== "float16") return undefined;
  return matmulFloat32Call(ctx, planMatmul(ctx.node, a!.dims, b.dims), a!, b);
}

function matmulFloat64(p: MatmulPlan, A: Float64Array, B: Float64Array): Float64Array {
  const { M, N, K } = p;
  const C = new Float64Array(sizeOf(p.outDims));
  const aMap = broadcastIndexMap(p.batch, p.aBatch);
  const bMap = broadcastIndexMap(p.batch, p.bBatch);
  for (let i = 0; i < aMap.length; i++) {
    naiveMatmul(M, N, K, A, aMap[i]! * M * K, B, bMap[i]! * K * N, C, i * M * N);
  }
  return C;
}

const MatMul: OpDef = {
  opType: "MatMul",
  inferTypes(ctx) {
    const [a, b] = ctx.inputs;
    if (!a) return [{ dtype: b?.dtype ?? "float32" }];
    const shape = a.shape && b?.shape ? matmulShape(a.shape, b.shape) : undefined;
    return [shape ? { dtype: a.dtype, shape } : { dtype: a.dtype }];
  },
  run(ctx, inputs) {
    const call = matmulGemmCall(ctx, inputs);
    if (call) {
      computeOf(ctx).gemm(call.problems);
      return [call.output()];
    }
    const [a, b] = inputs as [Tensor, Tensor];
    const p = planMatmul(ctx.node, a.dims, b.dims);
    return [tensorFromFloat64(a.type, matmulFloat64(p, a.toFloat64(), b.toFloat64()), p.outDims)];
  },
};

/** Gemm's C broadcast to [M, N] (unidirectional), as a fresh row-major array of the output's precision. */
function expandBias<T extends Float32Array | Float64Array>(
  node: Node,
  c: Tensor,
  M: number,
  N: number,
  out: T,
): T {
  const dims = c.dims;
  const target = broadcastDims([M, N], dims);
  if (dims.length > 2 || !target || target[0] !== M || target[1] !== N) {
    throw new OpError(node, `C of shape [${dims}] does not broadcast to [${M},${N}]`);
  }
  const rows = dims.length === 2 ? dims[0]! : 1;
  const cols = dims.length >= 1 ? dims[dims.length - 1]! : 1;
  // A float32 C into a float32 output: whole rows at a time (a bias row is copied once per output row).
  if (c.type === "float32" && out instanceof Float32Array) {
    const src = c.data as Float32Array;
    if (cols === N) {
      if (rows === M) out.set(src.subarray(0, M * N));
      else {
        const row = src.subarray(0, N);
        for (let i = 0; i < M; i++) out.set(row, i * N);
      }
    } else if (rows === 1) out.fill(src[0]!);
    else for (let i = 0; i < M; i++) out.fill(src[i]!, i * N, (i + 1) * N);
    return out;
  }
  const src = c.toFloat64();
  for (let i = 0; i < M; i++) {
    const si = rows === 1 ? 0 : i * cols;
    for (let j = 0; j < N; j++) out[i * N + j] = src[si + (cols === 1 ? 0 : j)]!;
  }
  return out;
}

/** Gemm's validated attributes and sizes. */
interface GemmPlan {
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  M: number;
  N: number;
  K: number;
  lda: number;
  ldb: number;
}

function planGemm(node: Node, [a, b, c]: (Tensor | undefined)[]): GemmPlan {
  if (!a || !b) throw new OpError(node, "Gemm needs inputs A and B");
  if (a.type !== b.type || (c && c.type !== a.type)) throw new OpError(node, "input types differ");
  requireMatmulType(node, a.type);
  if (a.rank !== 2 || b.rank !== 2)
    throw new OpError(node, `A and B must be 2-D, got [${a.dims}], [${b.dims}]`);
  const transA = attrInt(node, "transA", 0) !== 0;
  const transB = attrInt(node, "transB", 0) !== 0;
  const alpha = attrFloat(node, "alpha", 1);
  const beta = c ? attrFloat(node, "beta", 1) : 0;
  const [M, K] = transA ? [a.dims[1]!, a.dims[0]!] : [a.dims[0]!, a.dims[1]!];
  const [kb, N] = transB ? [b.dims[1]!, b.dims[0]!] : [b.dims[0]!, b.dims[1]!];
  if (kb !== K) throw new OpError(node, `inner dimensions differ: op(A) is ${M}×${K}, op(B) is ${kb}×${N}`);
  return { transA, transB, alpha, beta, M, N, K, lda: a.dims[1]!, ldb: b.dims[1]! };
}

/** Gemm's float32/float16 inputs as one GEMM problem (C expanded into the output); undefined otherwise. */
export function gemmGemmCall(
  ctx: OpContext,
  inputs: (Tensor | undefined)[],
  activation?: GemmActivation,
  residual?: Tensor,
): GemmCall | undefined {
  const g = planGemm(ctx.node, inputs);
  if (residual) checkResidual(ctx.node, inputs[0]!, residual, g.M, g.N);
  const [a, b, c] = inputs as [Tensor, Tensor, Tensor | undefined];
  if (a.type !== "float32" && a.type !== "float16") return undefined;
  const { M, N } = g;
  const C = computeOf(ctx).allocFloat32(M * N);
  // beta = 0 without C: the GEMM overwrites C (stale pooled contents are never read). A bias row stays a
  // hint (rowBias): the kernel adds it, or fills C from it (fillRowBias) when it reads beta·C.
  const biasRow = c?.type === "float32" && c.size === N && c.dims.at(-1) === N && g.beta === 1;
  if (c && !biasRow) expandBias(ctx.node, c, M, N, C);
  const problem: GemmProblem = {
    ...g,
    A: float32Data(a),
    aOffset: 0,
    B: float32Data(b),
    bOffset: 0,
    C,
    cOffset: 0,
    ldc: N,
  };
  // The bias array itself where it is exactly one row (the usual [N]): an initializer's array is then the one
  // the engine marked immutable, which kernels may cache against (the CPU bound plan binds such GEMMs).
  if (biasRow) {
    const row = c.data as Float32Array;
    problem.rowBias = row.length === N ? row : row.subarray(0, N);
  }
  if (activation) problem.activation = activation;
  if (residual) problem.residual = float32Data(residual);
  const type = a.type;
  return { problems: [problem], output: () => floatTensor(type, C, [M, N]) };
}

const Gemm: OpDef = {
  opType: "Gemm",
  inferTypes(ctx) {
    const [a, b] = ctx.inputs;
    const node = ctx.node;
    const dtype = a?.dtype ?? b?.dtype ?? "float32";
    if (!a?.shape || !b?.shape || a.shape.length !== 2 || b.shape.length !== 2) return [{ dtype }];
    const M = attrInt(node, "transA", 0) ? a.shape[1]! : a.shape[0]!;
    const N = attrInt(node, "transB", 0) ? b.shape[0]! : b.shape[1]!;
    return [{ dtype, shape: [M, N] }];
  },
  run(ctx, inputs) {
    return runGemm(ctx, inputs);
  },
};

/** FusedGemm's residual: of A's dtype and exactly the output's [M, N] (no broadcast). */
function checkResidual(node: Node, a: Tensor, r: Tensor, M: number, N: number): void {
  if (r.type !== a.type) throw new OpError(node, `residual has dtype ${r.type}, A has ${a.type}`);
  if (r.rank !== 2 || r.dims[0] !== M || r.dims[1] !== N)
    throw new OpError(
      node,
      `residual must be [${M},${N}] (the output's shape), got [${r.dims}] — where fusion made this node of an Add whose shapes were unknown, that Add broadcast at run time: optimize with the pass fuse-gemm-activation disabled`,
    );
}

const ACTIVATION_FLOAT64: Record<GemmActivation, (x: number) => number> = {
  gelu: geluErf,
  "gelu-tanh": geluTanh,
};

/**
 * Gemm's computation, with FusedGemm's activation and then its residual applied last (in float64 on the
 * reference path).
 */
function runGemm(
  ctx: OpContext,
  inputs: (Tensor | undefined)[],
  activation?: GemmActivation,
  residual?: Tensor,
): Tensor[] {
  const call = gemmGemmCall(ctx, inputs, activation, residual);
  if (call) {
    computeOf(ctx).gemm(call.problems);
    return [call.output()];
  }
  const { transA, transB, alpha, beta, M, N, K, lda, ldb } = planGemm(ctx.node, inputs);
  const [a, b, c] = inputs as [Tensor, Tensor, Tensor | undefined];
  const A = a.toFloat64();
  const B = b.toFloat64();
  const out = c ? expandBias(ctx.node, c, M, N, new Float64Array(M * N)) : new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        acc += A[transA ? k * lda + i : i * lda + k]! * B[transB ? j * ldb + k : k * ldb + j]!;
      }
      out[i * N + j] = alpha * acc + beta * out[i * N + j]!;
    }
  }
  if (activation) {
    const act = ACTIVATION_FLOAT64[activation];
    for (let i = 0; i < out.length; i++) out[i] = act(out[i]!);
  }
  if (residual) {
    const r = residual.toFloat64();
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + r[i]!;
  }
  return [tensorFromFloat64(a.type, out, [M, N])];
}

const FUSED_ACTIVATIONS: Record<string, GemmActivation> = { Gelu: "gelu", FastGelu: "gelu-tanh" };

/** FusedGemm's `activation` attribute, checked: undefined when absent or "" (a residual-only FusedGemm). */
export function fusedGemmActivation(node: Node): GemmActivation | undefined {
  const a = node.attrs.activation;
  if (a === undefined) return undefined;
  const name = a.type === "string" ? a.value : undefined;
  if (name === "") return undefined;
  const act =
    name !== undefined && Object.hasOwn(FUSED_ACTIVATIONS, name) ? FUSED_ACTIVATIONS[name] : undefined;
  if (!act)
    throw new OpError(
      node,
      `activation must be one of ${Object.keys(FUSED_ACTIVATIONS).join(", ")} (or absent), got ${name ?? a.type}`,
    );
  return act;
}

/** FusedGemm's optional residual input (input 3). */
export function fusedGemmResidual(node: Node, inputs: readonly (Tensor | undefined)[]): Tensor | undefined {
  return node.inputs[3] ? inputs[3] : undefined;
}

/**
 * mhafuse.FusedGemm: Gemm (the same inputs A, B, C, attributes and type rule) with an epilogue,
 * Y = act(alpha·op(A)·op(B) + beta·C) + R. `activation`: "Gelu" (erf form, as com.microsoft.Gelu), "FastGelu"
 * (tanh form, as com.microsoft.FastGelu / ONNX Gelu approximate = "tanh"), or absent; R (optional input 3,
 * `residual`): an [M, N] tensor of A's dtype added last, as the Add of a residual connection. The
 * fuse-gemm-activation pass makes it of Gemm → GELU and of Add(x, Gemm) so a backend applies both in its GEMM
 * epilogue while the tile is in registers, with no pass of its own over the activations (one dispatch fewer
 * each on webgpu); `--target onnxruntime` lowers it back to Gemm (+ Gelu / FastGelu) (+ Add).
 */
const FusedGemm: OpDef = {
  opType: "FusedGemm",
  domain: "mhafuse",
  inferTypes: (ctx) => Gemm.inferTypes(ctx),
  run(ctx, inputs) {
    return runGemm(ctx, inputs, fusedGemmActivation(ctx.node), fusedGemmResidual(ctx.node, inputs));
  },
};

/** FusedGemm's float32/float16 inputs as one GEMM problem with its epilogue; undefined otherwise. */
export function fusedGemmCall(ctx: OpContext, inputs: (Tensor | undefined)[]): GemmCall | undefined {
  return gemmGemmCall(ctx, inputs, fusedGemmActivation(ctx.node), fusedGemmResidual(ctx.node, inputs));
}

export const matmulOps: readonly OpDef[] = [MatMul, Gemm, FusedGemm];
registerOps(matmulOps);
