/**
 * The webgpu backend's kernel registry: which ops run on the GPU and how a node maps onto the kernels in
 * ../kernels. Kinds of entry:
 *  - math (GEMM with bias epilogue, norms, softmax, elementwise, maps, flash attention: the packed-QKV op
 *    here, the general ops in ./attention-kernels.ts, com.microsoft RotaryEmbedding in ./rotary-kernels.ts),
 *  - data movement (Transpose, Gather with host indices),
 *  - aliases (Reshape, Squeeze, Unsqueeze, Flatten, Identity, float→float Cast): the op's own contract runs on
 *    the device value's dims and hands its buffer on — no dispatch;
 *  - shape reads (Shape, Size): a host int64 result from a device value's dims, no read-back.
 * Every entry checks what it covers in `accepts`; what it declines runs on the CPU reference.
 */
import type { DType } from "../../../ir/dtype.js";
import { type Graph, type Node, normalizeDomain } from "../../../ir/graph.js";
import type { Tensor } from "../../../ir/tensor.js";
import { getOp } from "../../../ops/index.js";
import { validTokens } from "../../../ops/padding.js";
import { failFor, fixedLayout, isBatchFirst, varSeqlenLayout } from "../../../ops/qkv-to-context.js";
import { reduceGeometry } from "../../../ops/reduce.js";
import { attrFloat, attrInt, attrString } from "../../../ops/registry.js";
import { isOrderPreserving, transposePerm } from "../../../ops/transpose.js";
import { KernelRegistry } from "../../kernel-registry.js";
import { packedQkvAttention, varSeqlenQkvAttention } from "../kernels/attention.js";
import {
  bindings,
  elemOf,
  f16Enable,
  LINEAR_MAIN,
  linearGrid,
  narrow,
  sizeOf,
  storageKey,
  widen,
} from "../kernels/common.js";
import { type BinaryOp, binary, broadcastShape } from "../kernels/elementwise.js";
import { gemm } from "../kernels/gemm.js";
import { gather, powScalar, transpose, type UnaryMap, unaryMap } from "../kernels/layout.js";
import { layerNorm, rmsNorm, rowMean, skipLayerNorm, softmax } from "../kernels/norm.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import {
  attention23Def,
  contribAttentionDef,
  groupQueryAttentionDef,
  mhafuseAttentionDef,
  multiHeadAttentionDef,
} from "./attention-kernels.js";
import { concatDef, sliceDef } from "./copy-kernels.js";
import { type GpuKernelContext, type GpuKernelDef, gemmPrecisionOf, storageOf } from "./kernel-context.js";
import { msRotaryEmbeddingDef } from "./rotary-kernels.js";
import { asShapeTensor, type DeviceValue, isDevice, type RunValue } from "./values.js";

const F32: readonly DType[] = ["float32"];

const isF32 = (v: RunValue | undefined) => v !== undefined && v.type === "float32";
const allF32 = (inputs: readonly (RunValue | undefined)[]) =>
  inputs.every((v) => v === undefined || v.type === "float32") ? undefined : "a non-float32 input";
const onlyOutput = (node: Node, keep = 1) =>
  node.outputs.slice(keep).some((o) => o)
    ? `optional outputs ${node.outputs.slice(keep)} are not computed`
    : undefined;

/** The op's shape-only contract run on device values' dims (aliases, Shape, Size). */
function contract(opType: string, extra: Partial<GpuKernelDef> = {}): GpuKernelDef {
  return {
    opType,
    ...extra,
    run(k, inputs) {
      const def = getOp(k.node);
      return def.run({ node: k.node, opset: k.opset }, inputs.map(asShapeTensor)) as unknown as RunValue[];
    },
  };
}

const alias = (opType: string, hostInputs: number[] = []): GpuKernelDef =>
  contract(opType, {
    aliases: [[0, 0]],
    hostInputs,
    accepts: (_n, _o, [x]) => (isDevice(x) ? undefined : "host input"),
  });

function binaryKernel(op: BinaryOp): GpuKernelDef {
  return {
    opType: op,
    types: F32,
    accepts(node, _o, inputs) {
      const [a, b] = inputs;
      if (!isF32(a) || !isF32(b)) return "a non-float32 input";
      try {
        if (broadcastShape(node.opType, a!.dims, b!.dims).length > 6) return "rank above 6";
      } catch (e) {
        return (e as Error).message;
      }
      return undefined;
    },
    run(k, [a, b]) {
      const x = k.device(a!);
      const y = k.device(b!);
      const out = k.alloc(broadcastShape(op, x.dims, y.dims), "float32", k.outF16(0));
      binary(k.gpu, k.rec, op, x, y, out);
      return [out];
    },
  };
}

function mapKernel(
  opType: string,
  map: UnaryMap,
  domain = "",
  ok?: (node: Node) => string | undefined,
): GpuKernelDef {
  return {
    opType,
    domain,
    types: F32,
    accepts: (node, _o, inputs) => ok?.(node) ?? allF32(inputs),
    run(k, [x]) {
      const v = k.device(x!);
      const out = k.alloc(v.dims, "float32", k.outF16(0));
      unaryMap(k.gpu, k.rec, map, v, out);
      return [out];
    },
  };
}

/** Gemm and mhafuse.FusedGemm (whose weights are uploaded the same way, transposed when transB = 1). */
export const isGemmNode = (node: Node): boolean =>
  (node.opType === "Gemm" && node.domain === "") ||
  (node.opType === "FusedGemm" && node.domain === "mhafuse");

/** FusedGemm's activations this kernel runs: erf GELU in the GEMM's epilogue, the tanh form after it. */
const FUSED_ACTIVATIONS = new Set(["", "Gelu", "FastGelu"]);

const GELU_TANH_FIELDS: UniformFields = [["total", "u32"]];

/**
 * out = GELU_tanh(x) (+ r): FusedGemm's "FastGelu" activation, whose tanh form the GEMM's epilogue does not
 * have, as one map after it — with the residual, which comes after the activation. x·sigmoid(2u) is
 * 0.5·x·(1 + tanh(u)) without the cancellation of 1 + tanh(u) for negative u. Math in f32.
 */
function geluTanhMap(
  k: GpuKernelContext,
  x: DeviceValue,
  r: DeviceValue | undefined,
  out: DeviceValue,
): void {
  const total = sizeOf(x.dims);
  const pipeline = k.gpu.pipelines.get(
    `fused-gemm-gelu-tanh:${storageKey(x, r, out)}`,
    () => `${f16Enable(x, r, out)}${uniformStruct(GELU_TANH_FIELDS)}${bindings([
      { name: "xs", type: elemOf(x) },
      ...(r ? [{ name: "rs", type: elemOf(r) }] : []),
      { name: "o", type: elemOf(out), write: true },
    ])}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  let x = ${widen(x, "xs[i]")};
  let t = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  var y = x / (1.0 + exp(-2.0 * t));
  ${r ? `y = y + ${widen(r, "rs[i]")};` : ""}
  o[i] = ${narrow(out, "y")};
}`,
  );
  k.rec.dispatch(
    pipeline,
    r ? [x.buffer, r.buffer, out.buffer] : [x.buffer, out.buffer],
    packUniforms(GELU_TANH_FIELDS, { total }),
    linearGrid(total),
    "webgpu.FusedGemm.FastGelu",
  );
}

/**
 * ONNX Gemm with transA = 0, alpha = 1 and C absent or a [N] / [1, N] bias with beta = 1: bias epilogue;
 * `fused`: mhafuse.FusedGemm's epilogue too — the erf GELU in the GEMM's, the tanh one (FastGelu) as a map
 * after it, the residual (input 3, [M, N]) added last in the GEMM's epilogue or in that map.
 */
const gemmKernelDef = (opType: string, domain: string, fused: boolean): GpuKernelDef => ({
  opType,
  domain,
  types: F32,
  f16Weights: [1, 2],
  accepts(node, _o, [a, b, c, r]) {
    // Another activation (an invalid node) falls to the op's contract, which rejects it with its code.
    if (fused && !FUSED_ACTIVATIONS.has(attrString(node, "activation", "")))
      return "activation other than Gelu or FastGelu";
    if (attrInt(node, "transA", 0) !== 0) return "transA = 1";
    if (attrFloat(node, "alpha", 1) !== 1) return "alpha ≠ 1";
    if (c && attrFloat(node, "beta", 1) !== 1) return "beta ≠ 1";
    if (!isF32(a) || !isF32(b) || (c && !isF32(c)) || (r && !isF32(r))) return "a non-float32 input";
    if (a!.dims.length !== 2 || b!.dims.length !== 2) return "A or B not 2-D";
    const N = attrInt(node, "transB", 0) ? b!.dims[0]! : b!.dims[1]!;
    if (c && (sizeOf(c.dims) !== N || c.dims[c.dims.length - 1] !== N)) return "C is not a [N] bias";
    if (r && (r.dims.length !== 2 || r.dims[0] !== a!.dims[0] || r.dims[1] !== N))
      return "the residual is not [M, N]";
    return undefined;
  },
  run(k, [a, b, c, r]) {
    const transB = attrInt(k.node, "transB", 0) !== 0;
    const activation = fused ? attrString(k.node, "activation", "") : "";
    const st = storageOf(k);
    const A = k.device(a!, st);
    const [M] = A.dims as [number, number];
    let B = isDevice(b) ? undefined : k.weight(b!, transB);
    let scratchB: DeviceValue | undefined;
    if (!B || B.f16 !== !!k.f16) {
      B = k.device(b!, st);
      if (transB) {
        scratchB = k.alloc([B.dims[1]!, B.dims[0]!], "float32", B.f16);
        transpose(k.gpu, k.rec, B, [1, 0], scratchB);
        B = scratchB;
      }
    }
    const N = B.dims[1]!;
    const out = k.alloc([M, N], "float32", !!k.f16);
    const bias = c ? k.device(c, st) : undefined;
    const residual = fused && r ? k.device(r, st) : undefined;
    const tanh = activation === "FastGelu";
    const pre = tanh ? k.alloc([M, N], "float32", !!k.f16) : out;
    gemm(k.gpu, k.rec, {
      a: A,
      b: B,
      bias: bias ? { buffer: bias.buffer, dims: [N] } : undefined,
      gelu: activation === "Gelu",
      residual: tanh ? undefined : residual,
      out: pre,
      ...gemmPrecisionOf(k),
    });
    if (tanh) {
      geluTanhMap(k, pre, residual, out);
      k.scratch(pre);
    }
    if (scratchB) k.scratch(scratchB);
    return [out];
  },
});

/**
 * MatMul: B 2-D → A's leading dims fold into M (one large GEMM); B rank ≥ 3 with the same leading dims as A
 * → a batched GEMM. Other broadcasts run on the CPU reference.
 */
const matmulDef: GpuKernelDef = {
  opType: "MatMul",
  types: F32,
  f16Weights: [1],
  accepts(_n, _o, [a, b]) {
    if (!isF32(a) || !isF32(b)) return "a non-float32 input";
    const ad = a!.dims;
    const bd = b!.dims;
    if (ad.length < 2 || bd.length < 2) return "a 1-D operand";
    if (ad[ad.length - 1] !== bd[bd.length - 2]) return "inner dims differ";
    if (bd.length === 2) return undefined;
    if (ad.length !== bd.length || ad.slice(0, -2).some((d, i) => d !== bd[i])) return "broadcast batch dims";
    return undefined;
  },
  run(k, [a, b]) {
    const st = storageOf(k);
    const A = k.device(a!, st);
    const bd = b!.dims;
    const w = bd.length === 2 && !isDevice(b) ? k.weight(b!, false) : undefined;
    const B = w && w.f16 === !!k.f16 ? w : k.device(b!, st);
    const ad = A.dims;
    const K = ad[ad.length - 1]!;
    const N = bd[bd.length - 1]!;
    const out = k.alloc([...ad.slice(0, -1), N], "float32", !!k.f16);
    const precision = gemmPrecisionOf(k);
    if (bd.length === 2) {
      const M = sizeOf(ad.slice(0, -1));
      gemm(k.gpu, k.rec, {
        a: { buffer: A.buffer, dims: [M, K] },
        b: { buffer: B.buffer, dims: [K, N] },
        out: { buffer: out.buffer, dims: [M, N] },
        ...precision,
      });
    } else {
      const batch = sizeOf(ad.slice(0, -2));
      const M = ad[ad.length - 2]!;
      gemm(k.gpu, k.rec, {
        a: { buffer: A.buffer, dims: [batch, M, K] },
        b: { buffer: B.buffer, dims: [batch, K, N] },
        out: { buffer: out.buffer, dims: [batch, M, N] },
        ...precision,
      });
    }
    return [out];
  },
};

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

const layerNormDef: GpuKernelDef = {
  opType: "LayerNormalization",
  types: F32,
  accepts(node, _o, inputs) {
    const [x, scale, bias] = inputs;
    const why = allF32(inputs) ?? onlyOutput(node);
    if (why || !x || !scale) return why ?? "missing input";
    const width = sizeOf(x.dims.slice(normAxis(attrInt(node, "axis", -1), x.dims.length)));
    if (sizeOf(scale.dims) !== width || (bias && sizeOf(bias.dims) !== width))
      return "broadcast scale or bias";
    return undefined;
  },
  run(k, [x, scale, bias]) {
    const X = k.device(x!);
    const out = k.alloc(X.dims, "float32", k.outF16(0));
    layerNorm(k.gpu, k.rec, {
      x: X,
      gamma: k.device(scale!),
      beta: bias ? k.device(bias) : undefined,
      out,
      epsilon: attrFloat(k.node, "epsilon", 1e-5),
      axis: attrInt(k.node, "axis", -1),
    });
    return [out];
  },
};

/** SimplifiedLayerNormalization (RMSNorm; what the fusion makes of spelled-out RMSNorms), either domain. */
const simplifiedLayerNormDef = (domain: string): GpuKernelDef => ({
  opType: "SimplifiedLayerNormalization",
  domain,
  types: F32,
  accepts(node, _o, inputs) {
    const [x, scale] = inputs;
    const why = allF32(inputs) ?? onlyOutput(node);
    if (why || !x || !scale) return why ?? "missing input";
    const width = sizeOf(x.dims.slice(normAxis(attrInt(node, "axis", -1), x.dims.length)));
    return sizeOf(scale.dims) === width ? undefined : "broadcast scale";
  },
  run(k, [x, scale]) {
    const X = k.device(x!);
    const out = k.alloc(X.dims, "float32", k.outF16(0));
    rmsNorm(k.gpu, k.rec, {
      x: X,
      gamma: k.device(scale!),
      out,
      epsilon: attrFloat(k.node, "epsilon", 1e-5),
      axis: attrInt(k.node, "axis", -1),
    });
    return [out];
  },
});

const skipLayerNormDef: GpuKernelDef = {
  opType: "SkipLayerNormalization",
  domain: "com.microsoft",
  types: F32,
  accepts(node, _o, inputs) {
    const [x, skip, gamma, beta, bias] = inputs;
    const why = allF32(inputs);
    if (why || !x || !skip || !gamma) return why ?? "missing input";
    if (node.outputs[1] || node.outputs[2]) return "mean / inv_std_var outputs are not computed";
    if (x.dims.join() !== skip.dims.join()) return "broadcast skip";
    const width = x.dims[x.dims.length - 1]!;
    if ([gamma, beta, bias].some((t) => t && sizeOf(t.dims) !== width)) return "gamma/beta/bias not [hidden]";
    return undefined;
  },
  run(k, [x, skip, gamma, beta, bias]) {
    const X = k.device(x!);
    const out = k.alloc(X.dims, "float32", k.outF16(0));
    const sum = k.node.outputs[3] ? k.alloc(X.dims, "float32", k.outF16(3)) : undefined;
    skipLayerNorm(k.gpu, k.rec, {
      x: X,
      skip: k.device(skip!),
      gamma: k.device(gamma!),
      beta: beta ? k.device(beta) : undefined,
      bias: bias ? k.device(bias) : undefined,
      out,
      sum,
      epsilon: attrFloat(k.node, "epsilon", 1e-12),
    });
    return sum ? [out, undefined as never, undefined as never, sum] : [out];
  },
};

/** Softmax over the last axis (opset 13's axis = -1; older opsets when the coerced axis is the last). */
const softmaxDef: GpuKernelDef = {
  opType: "Softmax",
  types: F32,
  accepts(node, opset, [x]) {
    if (!isF32(x)) return "a non-float32 input";
    const rank = Math.max(x!.dims.length, 1);
    const axis = normAxis(attrInt(node, "axis", opset >= 13 ? -1 : 1), rank);
    return axis === rank - 1 ? undefined : `axis ${axis} is not the last`;
  },
  run(k, [x]) {
    const X = k.device(x!);
    const out = k.alloc(X.dims, "float32", k.outF16(0));
    softmax(k.gpu, k.rec, X, out);
    return [out];
  },
};

const transposeDef: GpuKernelDef = {
  opType: "Transpose",
  types: F32,
  accepts: (_n, _o, [x]) =>
    !isF32(x) ? "a non-float32 input" : x!.dims.length > 6 ? "rank above 6" : undefined,
  run(k, [x]) {
    const X = k.device(x!);
    const rank = X.dims.length;
    const perm = transposePerm(k.node, rank);
    const dims = perm.map((p) => X.dims[p]!);
    // Only size-1 axes move (the [B, S, …] ↔ [S, B, …] Transposes around the packed op at batch 1): the
    // elements keep their order, so the result is the same buffer under new dims — no dispatch.
    if (isDevice(x) && isOrderPreserving(X.dims, perm)) return [X.reshape(dims)];
    const out = k.alloc(dims, "float32", X.f16);
    transpose(k.gpu, k.rec, X, perm, out);
    return [out];
  },
};

/** Gather's host indices as int32 positions on `data`'s axis (negative ones wrapped), each checked. */
function gatherIndices(node: Node, [data, idx]: readonly (RunValue | undefined)[]): Int32Array {
  const axis = normAxis(attrInt(node, "axis", 0), data!.dims.length);
  const axisDim = data!.dims[axis]!;
  const I = idx as Tensor;
  // int32 without a BigInt per element (Tensor.toInt32); a value past int32 is out of range anyway.
  const ints = I.toInt32();
  for (let i = 0; i < I.size; i++) {
    const v = ints ? ints[i]! : I.getNumber(i);
    const n = v < 0 ? v + axisDim : v;
    if (!(n >= 0 && n < axisDim))
      failFor(node)(`index ${v} is out of range for axis ${axis} of size ${axisDim}`);
    if (ints) ints[i] = n;
  }
  return ints!;
}

/** Gather of float32 rows by host indices (embeddings, the pooler's first token). */
const gatherDef: GpuKernelDef = {
  opType: "Gather",
  types: F32,
  hostInputs: [1],
  // The token ids only become index bytes: a replay rewrites them instead of keying its plan on them.
  hostData: { 1: gatherIndices },
  f16Weights: [0],
  accepts(node, _o, [data, idx]) {
    if (!isF32(data) || !idx || isDevice(idx)) return "not float32 data with host indices";
    if (idx.type !== "int64" && idx.type !== "int32") return "indices not int32/int64";
    const axis = normAxis(attrInt(node, "axis", 0), data!.dims.length);
    return axis < 0 || axis >= data!.dims.length ? "axis out of range" : undefined;
  },
  run(k, inputs) {
    const [data, idx] = inputs;
    const D = k.device(data!);
    const I = idx as Tensor;
    const axis = normAxis(attrInt(k.node, "axis", 0), D.dims.length);
    const indices = k.uploadHostData(1, inputs);
    const out = k.alloc([...D.dims.slice(0, axis), ...I.dims, ...D.dims.slice(axis + 1)], "float32", D.f16);
    gather(k.gpu, k.rec, D, axis, indices, I.size, out);
    return [out];
  },
};

/**
 * mhafuse.RemovePadding / RestorePadding (the padding-removal pass, src/passes/remove-padding.ts) as row gathers:
 * the mask is a host input, so the valid-token list is made on the host and the rows move on the device.
 */
function paddingRows(mask: Tensor): { tokens: Int32Array; B: number; S: number } {
  const [B, S] = mask.dims as [number, number];
  return { tokens: validTokens(mask), B, S };
}

const removePaddingDef: GpuKernelDef = {
  opType: "RemovePadding",
  domain: "mhafuse",
  types: F32,
  hostInputs: [1],
  accepts(_n, _o, [x, mask]) {
    if (!isF32(x)) return "a non-float32 input";
    if (!mask || isDevice(mask) || mask.dims.length !== 2) return "mask is not a host [B, S] tensor";
    return x!.dims[0] === mask.dims[0] && x!.dims[1] === mask.dims[1]
      ? undefined
      : "input is not [B, S, ...]";
  },
  run(k, [x, mask]) {
    const X = k.device(x!);
    const { tokens, B, S } = paddingRows(mask as Tensor);
    const rest = X.dims.slice(2);
    const out = k.alloc([1, tokens.length, ...rest], "float32", X.f16);
    if (tokens.length > 0) {
      const rows = { buffer: X.buffer, dims: [B * S, ...rest], f16: X.f16 };
      gather(k.gpu, k.rec, rows, 0, k.uploadInt32(tokens), tokens.length, out);
    }
    return [out];
  },
};

const restorePaddingDef: GpuKernelDef = {
  opType: "RestorePadding",
  domain: "mhafuse",
  types: F32,
  hostInputs: [1],
  accepts(_n, _o, [y, mask]) {
    if (!isF32(y)) return "a non-float32 input";
    if (!mask || isDevice(mask) || mask.dims.length !== 2) return "mask is not a host [B, S] tensor";
    return y!.dims[0] === 1 ? undefined : "input is not [1, T, ...]";
  },
  run(k, [y, mask]) {
    const Y = k.device(y!);
    const { tokens, B, S } = paddingRows(mask as Tensor);
    if (Y.dims[1] !== tokens.length)
      failFor(k.node)(`input 0 must be [1, T, ...] with T = ${tokens.length} valid tokens, got [${Y.dims}]`);
    // Row b·S + s reads compact row k, or -1 (zeros) where the mask is 0.
    const source = new Int32Array(B * S).fill(-1);
    tokens.forEach((t, i) => {
      source[t] = i;
    });
    const rest = Y.dims.slice(2);
    const out = k.alloc([B, S, ...rest], "float32", Y.f16);
    const rows = { buffer: Y.buffer, dims: [Math.max(1, tokens.length), ...rest], f16: Y.f16 };
    gather(k.gpu, k.rec, rows, 0, k.uploadInt32(source), B * S, out, true);
    return [out];
  },
};

/** The fixed form's int32 lengths [B] (B from qkv [S, B, 3E, 1, 1]). */
/** B of a fixed-length qkv: dim 1 of [S, B, 3E, 1, 1], dim 0 batch-first. */
const qkvBatch = (node: Node, qkv: RunValue): number => qkv.dims[isBatchFirst(node) ? 0 : 1]!;

const qkvLengths = (node: Node, [qkv, mask]: readonly (RunValue | undefined)[]): Int32Array =>
  Int32Array.from({ length: qkvBatch(node, qkv!) }, (_, b) => (mask as Tensor).getNumber(b));

/**
 * mhafuse.QKVToContext, fixed length, with int32 lengths (or none) and padded rows computed: the flash kernel
 * skips padded keys. The contract validates the node (on qkv's dims and the host lengths); the fallback bias
 * only matters for a length of -1, which stays on the CPU.
 */
const qkvDef: GpuKernelDef = {
  opType: "QKVToContext",
  domain: "mhafuse",
  types: F32,
  // Fixed form: lengths (1), the fallback bias (2, read only for rows the kernel declines: computed on demand).
  // var_seqlen form: cu_seqlens (2) and the max_seqlen dummy (3), all on the host.
  hostInputs: [1, 2, 3],
  lazyInputs: [2],
  // Fixed form: the lengths only become bytes (`accepts` decides on their signs); cu_seqlens key a replay.
  hostData: { 1: qkvLengths },
  // Every packed op of an encoder reads the same mask: one lengths upload per run (its value name and B).
  hostDataShare: { 1: (node, [qkv]) => `${node.inputs[1]}:${qkvBatch(node, qkv!)}` },
  accepts(node, opset, inputs, gpu) {
    if (attrInt(node, "var_seqlen", 0) !== 0)
      // batch_first there is an invalid node: the contract rejects it with its code.
      return attrInt(node, "batch_first", 0) !== 0
        ? "batch_first with var_seqlen"
        : qkvVarSeqlen.accepts!(node, opset, inputs, gpu);
    const [qkv, mask] = inputs;
    if (!isF32(qkv)) return "a non-float32 qkv";
    if (qkv!.dims.length !== 5) return "qkv is not [S, B, 3E, 1, 1] or [B, S, 3E, 1, 1]";
    if (attrInt(node, "compute_padded_rows", 1) === 0) return "compute_padded_rows = 0";
    if (mask && (isDevice(mask) || mask.type !== "int32" || mask.size !== qkvBatch(node, qkv!)))
      return "mask is not int32 [B] lengths";
    const { layout, keyValid } = fixedLayout(
      [asShapeTensor(qkv), asShapeTensor(mask), asShapeTensor(inputs[2])],
      attrInt(node, "num_heads"),
      node.attrs.hidden_size ? attrInt(node, "hidden_size") : undefined,
      failFor(node),
      isBatchFirst(node),
    );
    if (keyValid || layout.lengths?.some((l) => l < 0)) return "fallback-bias rows";
    return undefined;
  },
  run(k, inputs) {
    if (attrInt(k.node, "var_seqlen", 0) !== 0) return qkvVarSeqlen.run(k, inputs);
    const [qkv, mask] = inputs;
    const Q = k.device(qkv!, storageOf(k));
    const [d0, d1, E3] = Q.dims as [number, number, number];
    const out = k.alloc([d0, d1, E3 / 3, 1, 1], "float32", !!k.f16);
    packedQkvAttention(k.gpu, k.rec, {
      qkv: { buffer: Q.buffer, dims: [d0, d1, E3] },
      batchFirst: isBatchFirst(k.node),
      numHeads: attrInt(k.node, "num_heads"),
      lengths: mask ? k.uploadHostData(1, inputs) : undefined,
      out,
      precision: k.f16 ? "fp16" : "fp32",
      // The session's choice: a head size the tensor-core kernel does not take runs on the SIMT kernel.
      f16Kernel: k.attentionKernel,
      f16KernelPreferred: true,
    });
    return [out];
  },
};

/**
 * mhafuse.QKVToContext var_seqlen (qkv [T, 3E, 1, 1] + host cu_seqlens): the packed op after padding removal.
 * One op type has one kernel here (the registry finds it by type), so qkvDef hands this form over.
 */
const qkvVarSeqlen: Pick<GpuKernelDef, "accepts" | "run"> = {
  accepts(node, _o, [qkv, , cu]) {
    if (!isF32(qkv)) return "a non-float32 qkv";
    if (attrInt(node, "var_seqlen", 0) === 0) return "not var_seqlen";
    if (!cu || isDevice(cu) || cu.type !== "int32" || cu.dims.length !== 1)
      return "cu_seqlens is not host int32 [B + 1]";
    return qkv!.dims.length >= 2 && qkv!.dims.slice(2).every((d) => d === 1)
      ? undefined
      : "qkv is not [T, 3E, 1, 1]";
  },
  run(k, [qkv, mask, cu, maxLen]) {
    // The op's contract (cu_seqlens from 0, non-decreasing, ending at T, max_seqlen ≥ every length): the kernel
    // trusts it for every row it reads.
    const layout = varSeqlenLayout(
      [asShapeTensor(qkv), asShapeTensor(mask), cu as Tensor, asShapeTensor(maxLen)],
      attrInt(k.node, "num_heads"),
      k.node.attrs.hidden_size ? attrInt(k.node, "hidden_size") : undefined,
      failFor(k.node),
    );
    const Q = k.device(qkv!, storageOf(k));
    const [T, E3] = Q.dims as [number, number];
    const cuInts = Int32Array.from(layout.cuSeqlens!);
    // The longest sequence (max_seqlen may be larger): the kernel's grid of query tiles.
    let maxSeqlen = 0;
    for (let b = 0; b + 1 < cuInts.length; b++) maxSeqlen = Math.max(maxSeqlen, cuInts[b + 1]! - cuInts[b]!);
    const out = k.alloc([T, E3 / 3, 1, 1], "float32", !!k.f16);
    if (T > 0)
      varSeqlenQkvAttention(k.gpu, k.rec, {
        qkv: { buffer: Q.buffer, dims: [T, E3] },
        numHeads: attrInt(k.node, "num_heads"),
        cuSeqlens: k.uploadInt32(cuInts),
        batch: cuInts.length - 1,
        maxSeqlen,
        out: { buffer: out.buffer, dims: [T, E3 / 3] },
        precision: k.f16 ? "fp16" : "fp32",
        f16Kernel: k.attentionKernel,
        f16KernelPreferred: true,
      });
    return [out];
  },
};

/** Pow with a float32 base on the device and one host exponent value (RMSNorm's x², x^0.5…). */
const powDef: GpuKernelDef = {
  opType: "Pow",
  types: F32,
  hostInputs: [1],
  accepts(_n, _o, [x, y]) {
    if (!isF32(x)) return "not a float32 base";
    if (!y || isDevice(y) || y.size !== 1) return "exponent is not one host value";
    if (!["float32", "float64", "int32", "int64"].includes(y.type)) return `a ${y.type} exponent`;
    return undefined;
  },
  run(k, [x, y]) {
    const X = k.device(x!);
    const e = (y as Tensor).getNumber(0);
    // Broadcasting the one exponent value may add leading axes of size 1.
    const dims = broadcastShape("Pow", X.dims, y!.dims);
    // Stored f32 in fp16 mode too: RMSNorm's x² overflows f16 from |x| = 256.
    const out = k.alloc(dims);
    if (e === 2) unaryMap(k.gpu, k.rec, "Square", X, out);
    else powScalar(k.gpu, k.rec, X, e, out);
    return [out];
  },
};

/** ReduceMean over trailing axes (contiguous rows): RMSNorm's mean of squares, pooling over the last dims. */
const reduceMeanDef: GpuKernelDef = {
  opType: "ReduceMean",
  types: F32,
  hostInputs: [1],
  accepts(node, opset, [x, axes]) {
    if (!isF32(x)) return "not float32";
    const dims = x!.dims;
    const g = reduceGeometry(node, opset, dims, axes as Tensor | undefined);
    if (g === "none") return undefined;
    const r = dims.length;
    return g.axes.every((a, i) => a === r - g.axes.length + i) ? undefined : "axes are not the trailing ones";
  },
  run(k, [x, axes]) {
    const X = k.device(x!);
    const g = reduceGeometry(k.node, k.opset, X.dims, axes as Tensor | undefined);
    if (g === "none") return [X];
    const width = sizeOf(g.axes.map((a) => X.dims[a]!));
    // A statistic: f32 in fp16 mode too (X may be f16; the sum is f32 either way).
    const out = k.alloc(g.outDims);
    rowMean(k.gpu, k.rec, X, sizeOf(g.outDims), width, out);
    return [out];
  },
};

/** com.microsoft.BiasGelu: GELU(x + bias[width]) as the broadcast Add, then the erf GELU map. */
const biasGeluDef: GpuKernelDef = {
  opType: "BiasGelu",
  domain: "com.microsoft",
  types: F32,
  accepts(_n, _o, [x, bias]) {
    if (!isF32(x) || !isF32(bias)) return "a non-float32 input";
    const width = x!.dims[x!.dims.length - 1];
    return bias!.dims.length === 1 && bias!.dims[0] === width && width !== 0
      ? undefined
      : "bias is not [width]";
  },
  run(k, [x, bias]) {
    const X = k.device(x!);
    // The sum in f32 (scratch), the GELU output in the run's storage.
    const sum = k.alloc(X.dims);
    binary(k.gpu, k.rec, "Add", X, k.device(bias!), sum);
    const out = k.alloc(X.dims, "float32", k.outF16(0));
    unaryMap(k.gpu, k.rec, "Gelu", sum, out);
    k.scratch(sum);
    return [out];
  },
};

const onnxGelu = (node: Node) =>
  attrString(node, "approximate", "none") === "none" ? undefined : "tanh approximation";

export const webgpuKernels = new KernelRegistry<never, GpuKernelDef>().register(
  gemmKernelDef("Gemm", "", false),
  gemmKernelDef("FusedGemm", "mhafuse", true),
  matmulDef,
  layerNormDef,
  simplifiedLayerNormDef(""),
  simplifiedLayerNormDef("com.microsoft"),
  skipLayerNormDef,
  softmaxDef,
  binaryKernel("Add"),
  binaryKernel("Sub"),
  binaryKernel("Mul"),
  binaryKernel("Div"),
  mapKernel("Gelu", "Gelu", "com.microsoft"),
  biasGeluDef,
  mapKernel("Gelu", "Gelu", "", onnxGelu),
  mapKernel("Erf", "Erf"),
  mapKernel("Tanh", "Tanh"),
  mapKernel("Relu", "Relu"),
  mapKernel("Sigmoid", "Sigmoid"),
  mapKernel("Sqrt", "Sqrt"),
  mapKernel("Exp", "Exp"),
  mapKernel("Neg", "Neg"),
  mapKernel("Abs", "Abs"),
  mapKernel("Reciprocal", "Reciprocal"),
  mapKernel("Cos", "Cos"),
  mapKernel("Sin", "Sin"),
  powDef,
  reduceMeanDef,
  sliceDef,
  concatDef,
  qkvDef,
  removePaddingDef,
  restorePaddingDef,
  mhafuseAttentionDef,
  multiHeadAttentionDef,
  attention23Def,
  contribAttentionDef,
  groupQueryAttentionDef,
  msRotaryEmbeddingDef,
  transposeDef,
  gatherDef,
  alias("Reshape", [1]),
  alias("Squeeze", [1]),
  alias("Unsqueeze", [1]),
  alias("Flatten"),
  alias("Identity"),
  // float → float Cast is an alias; any other Cast runs on the host.
  {
    opType: "Cast",
    aliases: [[0, 0]],
    accepts: (node, _o, [x]) =>
      isDevice(x) && x.type === "float32" && attrInt(node, "to") === 1 ? undefined : "not float→float",
    run: (_k, [x]) => [x!],
  },
  contract("Shape", { accepts: (_n, _o, [x]) => (isDevice(x) ? undefined : "host input") }),
  contract("Size", { accepts: (_n, _o, [x]) => (isDevice(x) ? undefined : "host input") }),
);

/** Op types of `graph` (domain-qualified) with no webgpu kernel at all, sorted: what `inspect` reports. */
export function webgpuOpsWithoutKernel(graph: Pick<Graph, "nodes">): string[] {
  const have = new Set(webgpuKernels.ops());
  const label = (n: Node) => (n.domain ? `${n.domain}.${n.opType}` : n.opType);
  return [
    ...new Set(graph.nodes.filter((n) => !have.has(`${normalizeDomain(n.domain)}::${n.opType}`)).map(label)),
  ].sort();
}
