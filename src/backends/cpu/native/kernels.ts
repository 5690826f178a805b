/**
 * Typed wrappers of the native CPU kernels. They take typed arrays and element offsets, never mhafuse
 * Tensors, so the CPU backend can register them behind whatever kernel seam it has. Every function computes
 * what the JS reference does (src/ops, src/backends/cpu), NaN and ±Inf included, in float32.
 */
import type { NativeBinding, PackedHandle, RawAttention, RawLayout } from "../../../native/binding.js";
import { NativeKernelError, nativeCall } from "./errors.js";

/** Fused activation: none, GELU in its erf form (as geluErfFloat32), the tanh form (FastGelu), ReLU, Sigmoid. */
export type Activation = "none" | "gelu" | "fastGelu" | "relu" | "sigmoid";
const ACTIVATION: Record<Activation, number> = { none: 0, gelu: 1, fastGelu: 2, relu: 3, sigmoid: 4 };

function activationCode(a: Activation | undefined): number {
  const code = ACTIVATION[a ?? "none"];
  if (code === undefined) throw new NativeKernelError("ERR_MHAFUSE_NATIVE_ARG", `unknown activation ${a}`);
  return code;
}

/** B (weights) packed once into the GEMM micro-kernel's panels; reuse it for every call. Freed by the GC. */
export class PackedWeights {
  constructor(
    /** Rows of op(B): the inner dimension. */
    readonly K: number,
    /** Columns of op(B): the output width. */
    readonly N: number,
    /** The CPU kernels it was packed for (the GEMM runs on those even after selectIsa). */
    readonly isa: string,
    /** @internal */
    readonly handle: PackedHandle,
  ) {}
}

export interface GemmOptions {
  aOffset?: number;
  /** Leading dimension of A (default K). */
  lda?: number;
  cOffset?: number;
  /** Leading dimension of C (default N). */
  ldc?: number;
  /** [N], added to every row. */
  bias?: Float32Array;
  /** Applied after the bias. */
  activation?: Activation;
  /** Added last: C[i, j] += residual[residualOffset + i·ldr + j]. */
  residual?: Float32Array;
  residualOffset?: number;
  /** Leading dimension of the residual (default N). */
  ldr?: number;
}

/** Where one tensor's (batch, head, seq) rows live in a flat array (as attention-kernel.ts StridedLayout). */
export type Layout = RawLayout;

/** The general fused attention, with the fields and semantics of attention-kernel.ts AttentionArgs. */
export interface AttentionOptions {
  batch: number;
  numHeads: number;
  /** GQA: query head n reads kv head floor(n / (numHeads / kvNumHeads)). */
  kvNumHeads: number;
  seqQ: number;
  seqKV: number;
  headSize: number;
  vHeadSize: number;
  scale: number;
  q: Float32Array;
  qLayout: Layout;
  k: Float32Array;
  kLayout: Layout;
  v: Float32Array;
  vLayout: Layout;
  out: Float32Array;
  outLayout: Layout;
  /** Per batch: keys j >= len are ignored. */
  keyLengths?: ArrayLike<number>;
  /** Per batch: rows i >= len are written as zeros. */
  queryLengths?: ArrayLike<number>;
  /** Var-seqlen: batch b is rows cu[b]..cu[b+1] of every tensor (its batchStride unused; seqQ = seqKV = length). */
  cuSeqlens?: ArrayLike<number>;
  /** When set: key j is allowed iff j <= i + causalOffset. */
  causalOffset?: number;
  /** Additive score bias [b·batchStride + n·headStride + i·rowStride + j]; strides 0 broadcast. */
  bias?: { data: Float32Array; offset: number; batchStride: number; headStride: number; rowStride: number };
}

/** Packed QKV (TensorRT bertQKVToContext): per token the 3E axis is [numHeads, 3 (q, k, v), headSize]. */
export interface PackedQkvOptions {
  /** [S, B, 3E] fixed length, or [T, 3E] with cuSeqlens. */
  qkv: Float32Array;
  /** [S, B, E] or [T, E]. */
  out: Float32Array;
  numHeads: number;
  headSize: number;
  /** Fixed length: sequences per batch and their padded length. */
  batch?: number;
  seqLen?: number;
  /** Fixed length: valid tokens per sequence (0..seqLen); absent = all valid. */
  lengths?: ArrayLike<number>;
  /** Fixed length: compute padded query rows over the valid keys (as TensorRT does) instead of writing zeros. */
  computePaddedRows?: boolean;
  /** Variable length: [B + 1] token offsets; qkv is then [T, 3E]. */
  cuSeqlens?: ArrayLike<number>;
}

const int32 = (x: ArrayLike<number> | undefined): Int32Array | undefined =>
  x === undefined || x instanceof Int32Array ? (x as Int32Array | undefined) : Int32Array.from(x);

function argError(message: string): never {
  throw new NativeKernelError("ERR_MHAFUSE_NATIVE_ARG", message);
}

/** The native kernels, bound to a loaded addon. */
export class NativeKernels {
  /** The build in use, read once (every GEMM's packed-weights key names it; info() builds an object). */
  private activeIsa: string;

  constructor(private readonly raw: NativeBinding) {
    this.activeIsa = raw.info().isa;
  }

  /** The kernel build in use: "avx512", "avx2" or "portable". */
  get isa(): string {
    return this.activeIsa;
  }
  /** Kernel builds this CPU can run, widest first. */
  get isas(): string[] {
    return this.raw.info().isas;
  }
  /** Threads of the native pool (the calling thread included). */
  get threads(): number {
    return this.raw.info().threads;
  }
  /** Sets the pool's thread count (default: the CPUs this process may run on, or MHAFUSE_NATIVE_THREADS). */
  setThreads(n: number): void {
    nativeCall(() => this.raw.setThreads(n));
  }
  /** Whether x[offset, offset + n) holds no NaN or ±Infinity (a vectorised scan). */
  allFinite(x: Float32Array, offset = 0, n = x.length - offset): boolean {
    return nativeCall(() => this.raw.allFinite(x, offset, n));
  }
  /** Switches the kernel build (tests and benchmarks); false when this CPU cannot run it. */
  selectIsa(name: string): boolean {
    const ok = this.raw.selectIsa(name);
    this.activeIsa = this.raw.info().isa;
    return ok;
  }

  /**
   * The float32 FMA rate this machine gives right now on the pool's threads (GFLOP/s), from register-only
   * FMAs of the kernel build in use, run for about `ms` milliseconds. On a shared or throttled machine this,
   * not the data sheet, is what a kernel's efficiency should be measured against.
   */
  measurePeak(ms = 50): number {
    let iters = 1 << 14;
    for (;;) {
      const t0 = process.hrtime.bigint();
      const flops = this.raw.fmaProbe(iters);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (s * 1000 >= ms || iters > 1 << 30) return flops / s / 1e9;
      iters *= Math.max(2, Math.min(16, Math.ceil(ms / 1000 / Math.max(s, 1e-6))));
    }
  }

  /**
   * How long handing work to the pool takes (microseconds, median and 90th percentile of `jobs`): a fork-join in
   * which every pool thread takes a task, issued right after the last one (`pauseMicros` 0: the workers are
   * spinning, as between a model run's kernels) or after a pause (past the spin window: they sleep and wake).
   */
  measureHandoff(jobs = 2000, pauseMicros = 0): { medianUs: number; p90Us: number; threads: number } {
    const r = nativeCall(() => this.raw.poolHandoff(jobs, pauseMicros));
    return { medianUs: r.median / 1000, p90Us: r.p90 / 1000, threads: r.threads };
  }

  /** Packs op(B) (K×N; B is K×N row-major, or N×K when `transposed`) once, for gemm. */
  packWeights(
    b: Float32Array,
    K: number,
    N: number,
    opts: { offset?: number; ld?: number; transposed?: boolean } = {},
  ): PackedWeights {
    const trans = opts.transposed ?? false;
    const ld = opts.ld ?? (trans ? K : N);
    const handle = nativeCall(() => this.raw.packB(b, opts.offset ?? 0, ld, K, N, trans));
    return new PackedWeights(K, N, this.isa, handle);
  }

  /** C[M×N] = act(A[M×K]·B + bias) + residual. C is overwritten (NaN it held is ignored); K = 0 gives C = act(bias). */
  gemm(M: number, a: Float32Array, b: PackedWeights, c: Float32Array, o: GemmOptions = {}): void {
    const N = b.N;
    nativeCall(() =>
      this.raw.gemm(
        M,
        a,
        o.aOffset ?? 0,
        o.lda ?? b.K,
        b.handle,
        c,
        o.cOffset ?? 0,
        o.ldc ?? N,
        o.bias ?? null,
        activationCode(o.activation),
        o.residual ?? null,
        o.residualOffset ?? 0,
        o.ldr ?? N,
      ),
    );
  }

  /** LayerNorm over rows of d: y = (x − mean)/√(var + ε)·gamma + beta; mean and 1/σ per row when asked. */
  layerNorm(
    x: Float32Array,
    y: Float32Array,
    rows: number,
    d: number,
    gamma: Float32Array,
    o: {
      beta?: Float32Array;
      epsilon?: number;
      xOffset?: number;
      yOffset?: number;
      mean?: Float32Array;
      invStd?: Float32Array;
    } = {},
  ): void {
    nativeCall(() =>
      this.raw.layerNorm(
        x,
        o.xOffset ?? 0,
        y,
        o.yOffset ?? 0,
        rows,
        d,
        o.epsilon ?? 1e-5,
        gamma,
        o.beta ?? null,
        o.mean ?? null,
        o.invStd ?? null,
      ),
    );
  }

  /**
   * SkipLayerNorm (com.microsoft): s = x + skip (+ bias), y = LayerNorm(s)·gamma (+ beta). skip holds skipRows
   * rows repeated over x's rows (a [S, d] skip against [B, S, d]); `sum` receives s when given.
   */
  skipLayerNorm(o: {
    x: Float32Array;
    skip: Float32Array;
    gamma: Float32Array;
    y: Float32Array;
    rows: number;
    d: number;
    beta?: Float32Array;
    bias?: Float32Array;
    sum?: Float32Array;
    epsilon?: number;
    skipRows?: number;
    xOffset?: number;
    skipOffset?: number;
    yOffset?: number;
    sumOffset?: number;
  }): void {
    nativeCall(() =>
      this.raw.skipLayerNorm(
        o.x,
        o.xOffset ?? 0,
        o.skip,
        o.skipOffset ?? 0,
        o.skipRows ?? o.rows,
        o.bias ?? null,
        o.gamma,
        o.beta ?? null,
        o.y,
        o.yOffset ?? 0,
        o.sum ?? null,
        o.sumOffset ?? 0,
        o.rows,
        o.d,
        o.epsilon ?? 1e-12,
      ),
    );
  }

  /** Softmax over the last axis (rows of d). */
  softmax(
    x: Float32Array,
    y: Float32Array,
    rows: number,
    d: number,
    o: { xOffset?: number; yOffset?: number } = {},
  ): void {
    nativeCall(() => this.raw.softmax(x, o.xOffset ?? 0, y, o.yOffset ?? 0, rows, d));
  }

  /** y = act(x + bias[i % bias.length]) over n elements (default: all of x). */
  activation(
    act: Activation,
    x: Float32Array,
    y: Float32Array,
    o: { n?: number; bias?: Float32Array; xOffset?: number; yOffset?: number } = {},
  ): void {
    const xo = o.xOffset ?? 0;
    const n = o.n ?? x.length - xo;
    if (o.bias && o.bias.length === 0 && n > 0) argError("bias is empty");
    nativeCall(() => this.raw.activation(x, xo, y, o.yOffset ?? 0, n, o.bias ?? null, activationCode(act)));
  }

  /** GELU, erf form (ONNX Gelu, com.microsoft Gelu / BiasGelu with `bias`). */
  gelu(
    x: Float32Array,
    y: Float32Array,
    o: { n?: number; bias?: Float32Array; xOffset?: number; yOffset?: number } = {},
  ): void {
    this.activation("gelu", x, y, o);
  }

  /** GELU, tanh form (com.microsoft FastGelu, ONNX Gelu approximate="tanh"). */
  fastGelu(
    x: Float32Array,
    y: Float32Array,
    o: { n?: number; bias?: Float32Array; xOffset?: number; yOffset?: number } = {},
  ): void {
    this.activation("fastGelu", x, y, o);
  }

  /** y = a + b[i % bLength] over n elements: same-shape add, or a row (bias) broadcast over rows. */
  add(
    a: Float32Array,
    b: Float32Array,
    y: Float32Array,
    o: { n?: number; bLength?: number; aOffset?: number; bOffset?: number; yOffset?: number } = {},
  ): void {
    const ao = o.aOffset ?? 0;
    const bo = o.bOffset ?? 0;
    const n = o.n ?? a.length - ao;
    nativeCall(() => this.raw.add(a, ao, b, bo, o.bLength ?? b.length - bo, y, o.yOffset ?? 0, n));
  }

  /** The general fused attention (separate Q/K/V, strides, causal, bias, GQA, Sq ≠ Skv, var-seqlen). */
  attention(a: AttentionOptions): void {
    const raw: RawAttention = {
      ...a,
      keyLengths: int32(a.keyLengths),
      queryLengths: int32(a.queryLengths),
      cuSeqlens: int32(a.cuSeqlens),
    };
    nativeCall(() => this.raw.attention(raw));
  }

  /** Packed-QKV self-attention with TensorRT bertQKVToContext semantics, scale 1/√headSize. */
  packedQkvAttention(o: PackedQkvOptions): void {
    const { numHeads: N, headSize: H } = o;
    const E = N * H;
    const common = { numHeads: N, kvNumHeads: N, headSize: H, vHeadSize: H, scale: 1 / Math.sqrt(H) };
    if (o.cuSeqlens) {
      const cu = int32(o.cuSeqlens)!;
      const B = cu.length - 1;
      if (B < 0) argError("cuSeqlens needs at least one element");
      let maxLen = 0;
      for (let b = 0; b < B; b++) maxLen = Math.max(maxLen, cu[b + 1]! - cu[b]!);
      const row = (t: number): Layout => ({
        offset: t * H,
        batchStride: 0,
        headStride: 3 * H,
        seqStride: 3 * E,
      });
      this.attention({
        ...common,
        batch: B,
        seqQ: maxLen,
        seqKV: maxLen,
        q: o.qkv,
        qLayout: row(0),
        k: o.qkv,
        kLayout: row(1),
        v: o.qkv,
        vLayout: row(2),
        out: o.out,
        outLayout: { offset: 0, batchStride: 0, headStride: H, seqStride: E },
        cuSeqlens: cu,
      });
      return;
    }
    const B = o.batch ?? argError("packedQkvAttention: batch is required without cuSeqlens");
    const S = o.seqLen ?? argError("packedQkvAttention: seqLen is required without cuSeqlens");
    const lengths = int32(o.lengths);
    if (lengths) {
      if (lengths.length < B) argError(`lengths has ${lengths.length} entries for batch ${B}`);
      for (let b = 0; b < B; b++)
        if (!(lengths[b]! >= 0 && lengths[b]! <= S))
          argError(`lengths[${b}] = ${lengths[b]} is outside 0..${S}`);
    }
    const row = (t: number): Layout => ({
      offset: t * H,
      batchStride: 3 * E,
      headStride: 3 * H,
      seqStride: B * 3 * E,
    });
    this.attention({
      ...common,
      batch: B,
      seqQ: S,
      seqKV: S,
      q: o.qkv,
      qLayout: row(0),
      k: o.qkv,
      kLayout: row(1),
      v: o.qkv,
      vLayout: row(2),
      out: o.out,
      outLayout: { offset: 0, batchStride: E, headStride: H, seqStride: B * E },
      keyLengths: lengths,
      queryLengths: o.computePaddedRows ? undefined : lengths,
    });
  }
}
