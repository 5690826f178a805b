/**
 * Tensor-core attention diagnostic for the H200 (issue 11): the kernel and its variants against float64 (it was
 * first written to find why the kernel was wrong there). Prints, on the device at hand (needs subgroup matrices;
 * on lavapipe only the SIMT rows print):
 *  1. what detection found (shader-f16, config, load/store spelling, per-subgroup offsets), and whether
 *     per-subgroup fragment offsets compile when derived from `@builtin(subgroup_id)` instead of tid / 32
 *     (newer Tint treats the builtin as subgroup-uniform; that would unlock the multi-subgroup GEMM tiles);
 *  2. building blocks on one 16×16×16 fragment, through workgroup memory with the kernels' padded strides:
 *     A·B (both row-major: the GEMM's loads) and A·Kᵀ (right operand column-major: only the attention's QKᵀ
 *     uses col_major), each max |diff| against float64;
 *  3. the whole packed-QKV kernel, SIMT and tensor-core, against float64 from the same f16 inputs, over
 *     shapes that separate the suspects — one fragment and one key tile (S = 16), exactly one tile (S = 32),
 *     a partial second tile (S = 33: online-softmax rescale, the prefetch/stash of the next tile), head sizes
 *     16/32/64 (Q/K fragments over h), key lengths (masked tail), and BERT-size [8,12,512,64] — with the
 *     first bad (batch, head, row) and whether bad rows cluster by row % 16 (fragment layout) or by key tile.
 *
 *   node --import tsx bench/tc-attention-diag.ts [--variants]   (--variants: every TC_ATTENTION_VARIANTS entry too)
 */
import { WebGpuContext } from "../src/backends/webgpu/context.js";
import { packedQkvAttention } from "../src/backends/webgpu/kernels/attention.js";
import {
  TC_ATTENTION_VARIANTS,
  type TcAttentionChoice,
  tcAttentionPlan,
} from "../src/backends/webgpu/kernels/attention-tc.js";
import type { GpuTensor } from "../src/backends/webgpu/kernels/common.js";
import type { F16Kernel } from "../src/backends/webgpu/precision.js";
import {
  fromF16,
  matrixLoad,
  matrixStore,
  matrixTypes,
  TC_HEADER,
  toF16,
} from "../src/backends/webgpu/precision.js";
import { benchArgs } from "./cli-args.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

const ctx = await WebGpuContext.create({ unsafeF16: true });
const f = ctx.f16;
console.log(`adapter: ${JSON.stringify(ctx.gpu.adapterInfo)}`);
console.log(`f16 support: ${JSON.stringify(f)}`);

function rand(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return fromF16(toF16(out), n);
}

async function compiles(code: string): Promise<string> {
  const device = ctx.gpu.device;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errs = info.messages.filter((m) => m.type === "error").map((m) => m.message);
  if (!errs.length)
    try {
      await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
    } catch (e) {
      errs.push((e as Error).message);
    }
  const err = await device.popErrorScope();
  if (err) errs.push(err.message);
  return errs.length ? `no: ${errs.join("; ").slice(0, 300)}` : "yes";
}

// 1. Per-subgroup offsets from @builtin(subgroup_id).
const syntax = f?.syntax;
if (syntax) {
  const t = matrixTypes({ M: 16, N: 16, K: 16 });
  const src = (sgExpr: string, builtin: string) => `${TC_HEADER}enable subgroups;
@group(0) @binding(0) var<storage, read> A: array<f16>;
@group(0) @binding(1) var<storage, read_write> C: array<f32>;
var<workgroup> W: array<f16, 1024>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32${builtin}) {
  W[lid] = A[lid];
  workgroupBarrier();
  let sg = ${sgExpr};
  let a = ${matrixLoad(syntax, t.left, "&W", "sg * 256u", "16u")};
  let b = ${matrixLoad(syntax, t.right, "&W", "0u", "16u")};
  var acc = ${t.result}();
  acc = subgroupMatrixMultiplyAccumulate(a, b, acc);
  ${matrixStore(syntax, "&C", "sg * 256u", "acc", "16u")};
}`;
  console.log(`per-subgroup offsets from tid / 32: ${await compiles(src("lid / 32u", ""))}`);
  console.log(
    `per-subgroup offsets from @builtin(subgroup_id): ${await compiles(src("sgid", ", @builtin(subgroup_id) sgid: u32"))}`,
  );
}

// 2. One fragment through workgroup memory: row-major B, and column-major Kᵀ.
if (syntax) {
  const t = matrixTypes({ M: 16, N: 16, K: 16 });
  const KS = 72; // the attention kernel's padded row (H = 64 + 8)
  for (const colMajor of [false, true]) {
    const code = `${TC_HEADER}
@group(0) @binding(0) var<storage, read> A: array<f16>;
@group(0) @binding(1) var<storage, read> B: array<f16>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<f16, ${16 * KS}>;
var<workgroup> Bs: array<f16, ${32 * KS}>;
@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var e = lid; e < 256u; e += 32u) { As[(e / 16u) * ${KS}u + 16u + e % 16u] = A[e]; Bs[(16u + e / 16u) * ${KS}u + 48u + e % 16u] = B[e]; }
  workgroupBarrier();
  let a = ${matrixLoad(syntax, t.left, "&As", "16u", `${KS}u`)};
  let b = ${matrixLoad(syntax, t.right, "&Bs", `${16 * KS + 48}u`, `${KS}u`, colMajor)};
  var acc = ${t.result}();
  acc = subgroupMatrixMultiplyAccumulate(a, b, acc);
  ${matrixStore(syntax, "&C", "0u", "acc", "16u")};
}`;
    const A = rand(256, 1);
    const B = rand(256, 2);
    const out = ctx.pool.acquire(1024);
    const rec = ctx.recorder();
    const k = ctx.pipelines.get(`diag-fragment:${colMajor}`, () => code);
    rec.dispatch(k, [ctx.pool.upload(toF16(A)), ctx.pool.upload(toF16(B)), out], undefined, [1]);
    await rec.submit();
    const got = await ctx.pool.readFloat32(out, 256);
    let worst = 0;
    for (let m = 0; m < 16; m++)
      for (let n = 0; n < 16; n++) {
        let x = 0;
        // Row-major B is [k][n]; column-major, the same memory is read as Bᵀ: element (k, n) at n·stride + k.
        for (let kk = 0; kk < 16; kk++) x += A[m * 16 + kk]! * (colMajor ? B[n * 16 + kk]! : B[kk * 16 + n]!);
        worst = Math.max(worst, Math.abs(got[m * 16 + n]! - x));
      }
    console.log(
      `fragment A·B (right ${colMajor ? "column" : "row"}-major, padded strides): max |diff| ${worst.toExponential(2)}`,
    );
  }
}

// 3. The whole kernel.
function reference(
  qkv: Float32Array,
  S: number,
  B: number,
  N: number,
  H: number,
  lengths: number[],
): Float64Array {
  const E = N * H;
  const out = new Float64Array(S * B * E);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let i = 0; i < S; i++) {
        const L = lengths[b]!;
        const qo = (i * B + b) * 3 * E + n * 3 * H;
        const s = new Float64Array(L);
        let m = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < L; j++) {
          const ko = (j * B + b) * 3 * E + n * 3 * H + H;
          let x = 0;
          for (let h = 0; h < H; h++) x += qkv[qo + h]! * qkv[ko + h]!;
          s[j] = x / Math.sqrt(H);
          m = Math.max(m, s[j]!);
        }
        let sum = 0;
        for (let j = 0; j < L; j++) sum += s[j] = Math.exp(s[j]! - m);
        for (let h = 0; h < H; h++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += s[j]! * qkv[(j * B + b) * 3 * E + n * 3 * H + 2 * H + h]!;
          out[(i * B + b) * E + n * H + h] = L ? acc / sum : 0;
        }
      }
  return out;
}

const shapes: [S: number, B: number, N: number, H: number, lengths?: number[]][] = [
  [16, 1, 1, 16],
  [16, 1, 1, 64],
  [32, 1, 1, 64],
  [33, 1, 1, 64],
  [70, 3, 2, 64, [70, 33, 1]],
  [128, 2, 4, 32],
  [128, 4, 2, 16],
  [512, 8, 12, 64],
];
// The tensor-core kernel's default and, with --variants, its other variants (TC_ATTENTION_VARIANTS).
const variants: (TcAttentionChoice | undefined)[] = [
  undefined,
  ...(process.argv.includes("--variants") ? TC_ATTENTION_VARIANTS : []),
];
const kernels: [F16Kernel, TcAttentionChoice | undefined][] = syntax
  ? [
      ["simt", undefined],
      ...variants.map((v): [F16Kernel, TcAttentionChoice | undefined] => ["tensor-core", v]),
    ]
  : [["simt", undefined]];
for (const [S, B, N, H, lengths] of shapes) {
  const E = N * H;
  const qkv = rand(S * B * 3 * E, S + B + N + H);
  const lens = lengths ?? Array(B).fill(S);
  const want = reference(qkv, S, B, N, H, lens);
  for (const [kernel, tcVariant] of kernels) {
    const out: GpuTensor = { buffer: ctx.pool.acquire(2 * S * B * E + 4), dims: [S, B, E] };
    try {
      const rec = ctx.recorder();
      packedQkvAttention(ctx, rec, {
        qkv: { buffer: ctx.pool.upload(toF16(qkv)), dims: [S, B, 3 * E] },
        numHeads: N,
        lengths: lengths ? ctx.pool.upload(Int32Array.from(lengths)) : undefined,
        out,
        precision: "fp16",
        f16Kernel: kernel,
        tcVariant,
      });
      await rec.submit();
    } catch (e) {
      console.log(`[S=${S} B=${B} N=${N} H=${H}] ${kernel}: ${(e as Error).message.slice(0, 400)}`);
      continue;
    }
    const got = fromF16(new Uint16Array(await ctx.pool.readback(out.buffer, 2 * S * B * E)), S * B * E);
    let worst = 0;
    let first = "";
    const badByRowMod16 = new Array(16).fill(0);
    const badByKeyTile = new Map<number, number>();
    for (let i = 0; i < S; i++)
      for (let b = 0; b < B; b++)
        for (let n = 0; n < N; n++) {
          let rowWorst = 0;
          for (let h = 0; h < H; h++) {
            const o = (i * B + b) * E + n * H + h;
            const d = Math.abs(got[o]! - want[o]!);
            rowWorst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(rowWorst, d);
          }
          worst = Math.max(worst, rowWorst);
          if (rowWorst > 2e-3) {
            if (!first)
              first = ` first bad row: b ${b} head ${n} row ${i} (|diff| ${rowWorst.toExponential(2)})`;
            badByRowMod16[i % 16]++;
            badByKeyTile.set(Math.floor(i / 16), (badByKeyTile.get(Math.floor(i / 16)) ?? 0) + 1);
          }
        }
    const pattern = first
      ? `; bad rows by row%16 [${badByRowMod16.join(",")}], by 16-row block {${[...badByKeyTile].map(([k, v]) => `${k}:${v}`).join(",")}}`
      : "";
    const limit = ctx.gpu.limits.maxComputeWorkgroupStorageSize;
    const p = tcAttentionPlan(H, H, limit, !!f?.multiSubgroup, tcVariant);
    const variant =
      kernel === "simt"
        ? "simt"
        : !p
          ? "tc/(does not fit)"
          : `tc/${p.multi ? `4sg${f?.sgBuiltin ? "(subgroup_id)" : ""}` : "1sg"} kt${p.BC} P ${p.pInK ? "in K" : "own"}`;
    console.log(
      `[S=${S} B=${B} N=${N} H=${H}${lengths ? ` lengths ${lengths}` : ""}] ${variant.padEnd(20)} max |diff| ${worst.toExponential(2)} ${worst <= 2e-3 ? "ok" : "BAD"}${first}${pattern}`,
    );
  }
}
ctx.dispose();
