"""Writes test/data/ops/*.json: the op suite as data, expected values computed here with numpy in float64.

Each case: {name, op: {type, domain?, opset?, attrs?, outputs?}, inputs: [tensor | null], expected:
[tensor] | "reference", tolerance}. A tensor is {dtype, dims, data} or {dtype, dims, random: seed,
scale?} (filled by the test's seeded generator, for cases too large to store; their expected values are
"reference": the op's reference implementation is the oracle). Rerun after changing a case:
    python3 scripts/gen-op-cases.py
"""
import json
import math
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "test" / "data" / "ops"
rng = np.random.default_rng(20261128)


def t(a, dtype="float32"):
    a = np.asarray(a)
    data = [int(v) for v in a.ravel()] if dtype in ("int32", "int64") else [float(v) for v in a.ravel()]
    return {"dtype": dtype, "dims": list(a.shape), "data": data}


def f32(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def rnd(dims, seed, scale=1.0, dtype="float32"):
    return {"dtype": dtype, "dims": dims, "random": seed, "scale": scale}


def case(name, op, inputs, expected, tolerance=1e-5):
    return {"name": name, "op": op, "inputs": inputs, "expected": expected, "tolerance": tolerance}


def f64(a):
    return np.asarray(a, dtype=np.float64)


# ---- linear -----------------------------------------------------------------------------------------
linear = []
a, b = f32(3, 4), f32(4, 5)
linear.append(case("MatMul 2-D", {"type": "MatMul"}, [t(a), t(b)], [t(f64(a) @ f64(b))]))
a, b = f32(2, 1, 3, 4), f32(3, 4, 2)
linear.append(case("MatMul batch broadcast [2,1,3,4]·[3,4,2]", {"type": "MatMul"}, [t(a), t(b)], [t(f64(a) @ f64(b))]))
a, b = f32(4), f32(4, 3)
linear.append(case("MatMul 1-D · 2-D", {"type": "MatMul"}, [t(a), t(b)], [t(f64(a) @ f64(b))]))
a, b = f32(2, 3), f32(3, 2)
linear.append(case("MatMul float64", {"type": "MatMul"}, [t(a, "float64"), t(b, "float64")],
                   [t(f64(a) @ f64(b), "float64")], 1e-12))
A, B, C = f32(4, 3), f32(5, 4), f32(5)
y = 0.5 * (f64(A).T @ f64(B).T) + 2.0 * f64(C)
linear.append(case("Gemm transA transB alpha beta, bias row", {"type": "Gemm", "attrs": {
    "transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}}, [t(A), t(B), t(C)], [t(y)]))
A, B, C = f32(3, 4), f32(4, 2), f32(3, 1)
linear.append(case("Gemm bias column", {"type": "Gemm"}, [t(A), t(B), t(C)], [t(f64(A) @ f64(B) + f64(C))]))
linear.append(case("MatMul large (parallel GEMM) vs reference", {"type": "MatMul"},
                   [rnd([2, 128, 256], 1), rnd([256, 384], 2)], "reference", 1e-4))
linear.append(case("Gemm large (async GEMM) vs reference", {"type": "Gemm", "attrs": {"transB": 1}},
                   [rnd([256, 256], 3), rnd([512, 256], 4), rnd([512], 5)], "reference", 1e-4))
linear.append(case("MatMul batched large vs reference", {"type": "MatMul"},
                   [rnd([8, 64, 64], 6), rnd([8, 64, 128], 7)], "reference", 1e-4))

X, W, Bc = f32(1, 2, 5, 5), f32(3, 2, 3, 3), f32(3)
Xp = np.pad(f64(X), ((0, 0), (0, 0), (1, 1), (1, 1)))
out = np.zeros((1, 3, 3, 3))
for m in range(3):
    for i in range(3):
        for j in range(3):
            out[0, m, i, j] = np.sum(Xp[0, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] * f64(W[m])) + Bc[m]
linear.append(case("Conv 2-D pads 1 strides 2 with bias", {"type": "Conv", "attrs": {
    "pads": [1, 1, 1, 1], "strides": [2, 2], "kernel_shape": [3, 3]}}, [t(X), t(W), t(Bc)], [t(out)]))
a, b = f32(2, 3, 4), f32(2, 4, 5)
linear.append(case("Einsum bij,bjk->bik", {"type": "Einsum", "opset": 12, "attrs": {"equation": "bij,bjk->bik"}},
                   [t(a), t(b)], [t(np.einsum("bij,bjk->bik", f64(a), f64(b)))]))
a, b = f32(3, 4), f32(5, 4)
linear.append(case("Einsum ij,kj->ik (transposed B)", {"type": "Einsum", "opset": 12, "attrs": {"equation": "ij,kj->ik"}},
                   [t(a), t(b)], [t(np.einsum("ij,kj->ik", f64(a), f64(b)))]))


# ---- attention --------------------------------------------------------------------------------------
def sdpa(q, k, v, n, nkv, scale=None, causal=False, key_lengths=None, bias=None):
    """q [B,Sq,N*H], k [B,Skv,Nkv*H], v [B,Skv,Nkv*Hv] → [B,Sq,N*Hv]; fully masked rows are zeros."""
    B, Sq, _ = q.shape
    Skv = k.shape[1]
    H = q.shape[2] // n
    Hv = v.shape[2] // nkv
    scale = 1 / math.sqrt(H) if scale is None else scale
    out = np.zeros((B, Sq, n * Hv))
    for b in range(B):
        for h in range(n):
            g = h // (n // nkv)
            Q = q[b, :, h * H:(h + 1) * H]
            K = k[b, :, g * H:(g + 1) * H]
            V = v[b, :, g * Hv:(g + 1) * Hv]
            s = Q @ K.T * scale
            if bias is not None:
                s = s + np.broadcast_to(bias, (B, n, Sq, Skv))[b, h]
            allowed = np.ones((Sq, Skv), dtype=bool)
            if causal:
                allowed &= np.arange(Skv)[None, :] <= np.arange(Sq)[:, None] + (Skv - Sq)
            if key_lengths is not None:
                allowed &= np.arange(Skv)[None, :] < key_lengths[b]
            s = np.where(allowed, s, -np.inf)
            for i in range(Sq):
                if not np.isfinite(s[i]).any():
                    continue
                p = np.exp(s[i] - s[i].max())
                out[b, i, h * Hv:(h + 1) * Hv] = (p / p.sum()) @ V
    return out


attention = []
q, k, v = f32(2, 3, 8), f32(2, 5, 8), f32(2, 5, 8)
attention.append(case("mhafuse.Attention cross, 2 heads", {"type": "Attention", "domain": "mhafuse", "attrs": {"num_heads": 2}},
                      [t(q), t(k), t(v)], [t(sdpa(f64(q), f64(k), f64(v), 2, 2))]))
q, k, v = f32(2, 4, 8), f32(2, 4, 8), f32(2, 4, 8)
kl = np.array([4, 2], dtype=np.int32)
attention.append(case("mhafuse.Attention causal with key_lengths", {"type": "Attention", "domain": "mhafuse",
                      "attrs": {"num_heads": 2, "causal": 1}}, [t(q), t(k), t(v), None, t(kl, "int32")],
                      [t(sdpa(f64(q), f64(k), f64(v), 2, 2, causal=True, key_lengths=kl))]))
q, k, v = f32(1, 3, 16), f32(1, 6, 4), f32(1, 6, 4)
attention.append(case("mhafuse.Attention GQA 4 query heads on 1 kv head, scale", {"type": "Attention", "domain": "mhafuse",
                      "attrs": {"num_heads": 4, "kv_num_heads": 1, "scale": 0.3}}, [t(q), t(k), t(v)],
                      [t(sdpa(f64(q), f64(k), f64(v), 4, 1, scale=0.3))]))
q, k, v, bias = f32(2, 3, 8), f32(2, 3, 8), f32(2, 3, 8), f32(1, 2, 3, 3)
attention.append(case("mhafuse.Attention additive bias [1,N,S,S]", {"type": "Attention", "domain": "mhafuse",
                      "attrs": {"num_heads": 2}}, [t(q), t(k), t(v), t(bias)],
                      [t(sdpa(f64(q), f64(k), f64(v), 2, 2, bias=f64(bias)))]))
q, k, v = f32(2, 5, 12), f32(2, 5, 12), f32(2, 5, 12)
attention.append(case("com.microsoft MultiHeadAttention, 3 heads", {"type": "MultiHeadAttention", "domain": "com.microsoft",
                      "attrs": {"num_heads": 3}}, [t(q), t(k), t(v)], [t(sdpa(f64(q), f64(k), f64(v), 3, 3))]))
# Device-kernel shapes (GPU flash tiles): drawn from their own generator so the cases above and below keep
# their values.
g2 = np.random.default_rng(20261129)


def g32(*shape):
    return g2.standard_normal(shape).astype(np.float32)


q, k, v = g32(2, 2, 32), g32(2, 5, 16), g32(2, 5, 8)
attention.append(case("mhafuse.Attention causal decode step Sq≠Skv (past 3), GQA 4 on 2, Hv ≠ H",
                      {"type": "Attention", "domain": "mhafuse", "attrs": {"num_heads": 4, "kv_num_heads": 2, "causal": 1}},
                      [t(q), t(k), t(v)], [t(sdpa(f64(q), f64(k), f64(v), 4, 2, causal=True))]))
q, k, v = g32(2, 3, 8), g32(2, 4, 8), g32(2, 4, 8)
mask = np.where(np.array([[1, 1, 1, 0], [1, 1, 0, 0]])[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
attention.append(case("mhafuse.Attention key-padding bias [B,1,1,Skv] with causal",
                      {"type": "Attention", "domain": "mhafuse", "attrs": {"num_heads": 2, "causal": 1}},
                      [t(q), t(k), t(v), t(mask)], [t(sdpa(f64(q), f64(k), f64(v), 2, 2, causal=True, bias=f64(mask)))]))
q, k, v, bias = g32(1, 3, 20), g32(1, 6, 10), g32(1, 6, 10), g32(3, 6)
attention.append(case("mhafuse.Attention rank-2 bias [Sq,Skv], GQA 4 on 2, odd head size 5",
                      {"type": "Attention", "domain": "mhafuse", "attrs": {"num_heads": 4, "kv_num_heads": 2}},
                      [t(q), t(k), t(v), t(bias)], [t(sdpa(f64(q), f64(k), f64(v), 4, 2, bias=f64(bias)))]))
q, k, v = g32(2, 2, 8), g32(2, 3, 8), g32(2, 3, 8)
kl = np.array([0, 3], dtype=np.int32)
attention.append(case("mhafuse.Attention key_lengths 0 gives zero rows",
                      {"type": "Attention", "domain": "mhafuse", "attrs": {"num_heads": 2}},
                      [t(q), t(k), t(v), None, t(kl, "int32")], [t(sdpa(f64(q), f64(k), f64(v), 2, 2, key_lengths=kl))]))
attention.append(case("mhafuse.Attention GQA causal Sq≠Skv over several key and row tiles vs reference",
                      {"type": "Attention", "domain": "mhafuse", "attrs": {"num_heads": 8, "kv_num_heads": 2, "causal": 1}},
                      [rnd([2, 70, 64], 21), rnd([2, 100, 16], 22), rnd([2, 100, 16], 23)], "reference", 1e-4))
MHA = {"type": "MultiHeadAttention", "domain": "com.microsoft"}
packed, qkv_bias = g32(2, 4, 2, 3, 4), g32(24)
pq, pk, pv = (f64(packed[:, :, :, i, :]).reshape(2, 4, 8) + f64(qkv_bias[8 * i:8 * (i + 1)]) for i in range(3))
attention.append(case("com.microsoft MultiHeadAttention packed QKV [B,S,N,3,H] with Q|K|V bias",
                      {**MHA, "attrs": {"num_heads": 2}}, [t(packed), None, None, t(qkv_bias)],
                      [t(sdpa(pq, pk, pv, 2, 2))]))
q, k, v, ab = g32(2, 3, 8), g32(2, 5, 8), g32(2, 5, 8), g32(1, 2, 3, 5)
lens = np.array([3, 5], dtype=np.int32)
pad = np.where(np.arange(5)[None, :] < lens[:, None], 0.0, -10000.0)[:, None, None, :]
attention.append(case("com.microsoft MultiHeadAttention key_padding_mask [B] plus attention_bias [1,N,S,T]",
                      {**MHA, "attrs": {"num_heads": 2}}, [t(q), t(k), t(v), None, t(lens, "int32"), t(ab)],
                      [t(sdpa(f64(q), f64(k), f64(v), 2, 2, bias=pad + f64(ab)))]))
q, kb, vb, bias = g32(2, 3, 8), g32(2, 2, 4, 4), g32(2, 2, 4, 4), g32(24)
kk = f64(kb).transpose(0, 2, 1, 3).reshape(2, 4, 8)
vv = f64(vb).transpose(0, 2, 1, 3).reshape(2, 4, 8)
attention.append(case("com.microsoft MultiHeadAttention BNSH key/value, bias on Q only, present outputs",
                      {**MHA, "attrs": {"num_heads": 2}, "outputs": 3}, [t(q), t(kb), t(vb), t(bias)],
                      [t(sdpa(f64(q) + f64(bias[:8]), kk, vv, 2, 2)), t(kb), t(vb)]))
q, kv = g32(2, 3, 8), g32(2, 4, 2, 2, 4)
raw = np.array([[1, 1, 0, 1], [1, 0, 0, 0]], dtype=np.int32)
kp = f64(kv[:, :, :, 0, :]).reshape(2, 4, 8)
vp = f64(kv[:, :, :, 1, :]).reshape(2, 4, 8)
attention.append(case("com.microsoft MultiHeadAttention packed KV [B,L,N,2,H], raw key mask [B,T], scale",
                      {**MHA, "attrs": {"num_heads": 2, "scale": 0.7}}, [t(q), t(kv), None, None, t(raw, "int32")],
                      [t(sdpa(f64(q), kp, vp, 2, 2, scale=0.7, bias=np.where(raw > 0, 0.0, -10000.0)[:, None, None, :]))]))
attention.append(case("mhafuse.Attention large (parallel, async) vs reference", {"type": "Attention", "domain": "mhafuse",
                      "attrs": {"num_heads": 8, "causal": 1}}, [rnd([2, 128, 256], 11), rnd([2, 128, 256], 12),
                      rnd([2, 128, 256], 13)], "reference", 1e-4))


# ---- activations, normalisation, elementwise --------------------------------------------------------
def erf(a):
    return np.vectorize(math.erf)(a)


activation = []
x = f32(2, 7, scale=2.0)
gelu = 0.5 * f64(x) * (1 + erf(f64(x) / math.sqrt(2)))
activation.append(case("com.microsoft Gelu", {"type": "Gelu", "domain": "com.microsoft"}, [t(x)], [t(gelu)]))
activation.append(case("Gelu opset 20 (erf)", {"type": "Gelu", "opset": 20}, [t(x)], [t(gelu)]))
tanh_gelu = 0.5 * f64(x) * (1 + np.tanh(math.sqrt(2 / math.pi) * (f64(x) + 0.044715 * f64(x) ** 3)))
activation.append(case("Gelu opset 20 approximate tanh", {"type": "Gelu", "opset": 20, "attrs": {"approximate": "tanh"}},
                       [t(x)], [t(tanh_gelu)]))
# Their own generator, so that the shared one's sequence (every later case's data) stays as it was.
fg = np.random.default_rng(20261129)
A, B, C = (fg.standard_normal(s).astype(np.float32) for s in [(3, 4), (4, 5), (5,)])
A *= 2
z = f64(A) @ f64(B) + f64(C)
activation.append(case("mhafuse.FusedGemm Gelu with bias row", {"type": "FusedGemm", "domain": "mhafuse",
                       "attrs": {"activation": "Gelu"}}, [t(A), t(B), t(C)], [t(0.5 * z * (1 + erf(z / math.sqrt(2))))]))
A, B = (fg.standard_normal(s).astype(np.float32) for s in [(4, 3), (5, 4)])
z = 0.5 * (f64(A).T @ f64(B).T)
activation.append(case("mhafuse.FusedGemm Gelu transA transB alpha, no C", {"type": "FusedGemm", "domain": "mhafuse",
                       "attrs": {"activation": "Gelu", "transA": 1, "transB": 1, "alpha": 0.5}}, [t(A), t(B)],
                       [t(0.5 * z * (1 + erf(z / math.sqrt(2))))]))
activation.append(case("mhafuse.FusedGemm Gelu large (GELU in the GEMM epilogue) vs reference",
                       {"type": "FusedGemm", "domain": "mhafuse", "attrs": {"activation": "Gelu", "transB": 1}},
                       [rnd([200, 256], 22), rnd([384, 256], 23), rnd([384], 24)], "reference", 1e-5))
activation.append(case("Relu large (the native map on the CPU backend) vs reference", {"type": "Relu"},
                       [rnd([300, 513], 25, 2.0)], "reference", 0))
activation.append(case("Sigmoid large (the native map on the CPU backend) vs reference", {"type": "Sigmoid"},
                       [rnd([300, 513], 26, 8.0)], "reference", 3e-7))
activation.append(case("com.microsoft Gelu large (chunked on the pool) vs reference", {"type": "Gelu", "domain": "com.microsoft"},
                       [rnd([512, 1024], 21, 3.0)], "reference", 1e-6))
x, y = f32(2, 3, 4), f32(4)
activation.append(case("Add row broadcast", {"type": "Add"}, [t(x), t(y)], [t(f64(x) + f64(y))]))
x, y = f32(2, 3), f32(1)
activation.append(case("Mul scalar", {"type": "Mul"}, [t(x), t(y)], [t(f64(x) * f64(y))]))
x = f32(2, 3, 5)
e = np.exp(f64(x) - f64(x).max(-1, keepdims=True))
activation.append(case("Softmax last axis", {"type": "Softmax", "opset": 13}, [t(x)], [t(e / e.sum(-1, keepdims=True))]))
x, g, bb = f32(3, 8), f32(8), f32(8)
mu = f64(x).mean(-1, keepdims=True)
var = ((f64(x) - mu) ** 2).mean(-1, keepdims=True)
activation.append(case("LayerNormalization axis -1", {"type": "LayerNormalization", "attrs": {"epsilon": 1e-5}},
                       [t(x), t(g), t(bb)], [t((f64(x) - mu) / np.sqrt(var + 1e-5) * f64(g) + f64(bb))], 1e-4))
x = f32(2, 3, 4)
activation.append(case("Transpose [2,0,1]", {"type": "Transpose", "attrs": {"perm": [2, 0, 1]}}, [t(x)],
                       [t(np.transpose(f64(x), (2, 0, 1)))], 0))


# ---- shape ops that alias their input -----------------------------------------------------------------
shape = []
x = f32(2, 3, 4)
shape.append(case("Reshape with -1 (aliases its input)", {"type": "Reshape"}, [t(x), t(np.array([4, -1]), "int64")],
                  [t(f64(x).reshape(4, 6))], 0))
x = f32(1, 3, 1, 2)
shape.append(case("Squeeze axes input (aliases)", {"type": "Squeeze", "opset": 13}, [t(x), t(np.array([0, 2]), "int64")],
                  [t(f64(x).reshape(3, 2))], 0))
x = f32(3, 2)
shape.append(case("Unsqueeze axes input (aliases)", {"type": "Unsqueeze", "opset": 13}, [t(x), t(np.array([0, 3]), "int64")],
                  [t(f64(x).reshape(1, 3, 2, 1))], 0))
x = f32(2, 3, 4)
shape.append(case("Flatten axis 2 (aliases)", {"type": "Flatten", "attrs": {"axis": 2}}, [t(x)], [t(f64(x).reshape(6, 4))], 0))
shape.append(case("Identity (aliases)", {"type": "Identity"}, [t(x)], [t(f64(x))], 0))
# Own generator: the shared sequence (later cases' data) stays as it was.
tg = np.random.default_rng(20261130)
xt = tg.standard_normal((1, 6, 4)).astype(np.float32)
shape.append(case("Transpose moving only a unit axis (webgpu: an alias, no dispatch)",
                  {"type": "Transpose", "attrs": {"perm": [1, 0, 2]}}, [t(xt)], [t(f64(xt).transpose(1, 0, 2))], 0))
xt = tg.standard_normal((2, 1, 3, 4)).astype(np.float32)
shape.append(case("Transpose of a unit axis and two others (a real transpose)",
                  {"type": "Transpose", "attrs": {"perm": [1, 3, 0, 2]}}, [t(xt)], [t(f64(xt).transpose(1, 3, 0, 2))], 0))

OUT.mkdir(parents=True, exist_ok=True)
# ---- decoder glue the webgpu backend runs on the device (rotary halves, RMSNorm) ----------------------
# Its own generator, so the cases above keep their values.
g3 = np.random.default_rng(20261130)
decoder = []
x = g3.standard_normal((2, 3, 8)).astype(np.float32)
decoder.append(case("Slice last axis, negative start, step 2", {"type": "Slice", "opset": 13},
                    [t(x), t(np.array([-7]), "int64"), t(np.array([8]), "int64"), t(np.array([2]), "int64"),
                     t(np.array([2]), "int64")], [t(x[:, :, 1::2])]))
decoder.append(case("Slice two axes, negative step", {"type": "Slice", "opset": 13},
                    [t(x), t(np.array([2, 6]), "int64"), t(np.array([0, 1]), "int64"), t(np.array([1, 2]), "int64"),
                     t(np.array([-1, -2]), "int64")], [t(x[:, 2:0:-1, 6:1:-2])]))
a, b = g3.standard_normal((2, 3, 4)).astype(np.float32), g3.standard_normal((2, 3, 2)).astype(np.float32)
decoder.append(case("Concat last axis (rotary halves)", {"type": "Concat", "attrs": {"axis": -1}},
                    [t(a), t(b), t(a)], [t(np.concatenate([a, b, a], axis=-1))]))
c = g3.standard_normal((1, 3, 4)).astype(np.float32)
decoder.append(case("Concat axis 0", {"type": "Concat", "attrs": {"axis": 0}}, [t(a), t(c)],
                    [t(np.concatenate([a, c], axis=0))]))
decoder.append(case("Pow by 2 (RMSNorm)", {"type": "Pow"}, [t(x), t(np.float32(2.0))], [t(f64(x) ** 2)]))
xn = np.array([-2.0, -1.5, -0.5, 0.0, 0.5, 1.5, 2.0, 3.0], dtype=np.float32)
decoder.append(case("Pow by 3: negative bases keep their sign", {"type": "Pow", "outputs": 1}, [t(xn), t(np.float32(3.0))],
                    [t(f64(xn) ** 3)]))
xp = np.abs(x) + 0.1
decoder.append(case("Pow by -0.5", {"type": "Pow"}, [t(xp), t(np.float32(-0.5))], [t(f64(xp) ** -0.5)]))
decoder.append(case("ReduceMean last axis keepdims (opset 18 axes input)", {"type": "ReduceMean", "opset": 18},
                    [t(x), t(np.array([-1]), "int64")], [t(f64(x).mean(axis=-1, keepdims=True))]))
decoder.append(case("ReduceMean last two axes, keepdims 0 (opset 13 attribute)",
                    {"type": "ReduceMean", "opset": 13, "attrs": {"axes": [1, 2], "keepdims": 0}},
                    [t(x)], [t(f64(x).mean(axis=(1, 2)))]))
decoder.append(case("Cos", {"type": "Cos"}, [t(x * 3)], [t(np.cos(f64(x * 3)))]))
decoder.append(case("Sin", {"type": "Sin"}, [t(x * 3)], [t(np.sin(f64(x * 3)))]))

# ---- com.microsoft RotaryEmbedding and mhafuse.Attention over a KV cache (the decoders' fused ops) ------
# Their own generator, so the cases above keep their values.
g4 = np.random.default_rng(20261201)


def g4f(*shape):
    return g4.standard_normal(shape).astype(np.float32)


def rope(x, rows, cos, sin, rotary_dim, interleaved):
    """x [B,S,N,H] float64; token (b, s) reads cache row rows[b][s]; the head tail past rotary_dim passes through."""
    out = x.copy()
    half = rotary_dim // 2
    for b in range(x.shape[0]):
        for s in range(x.shape[1]):
            c, sn = cos[rows[b][s], :half], sin[rows[b][s], :half]
            if interleaved:
                x1, x2 = x[b, s, :, 0:rotary_dim:2], x[b, s, :, 1:rotary_dim:2]
                out[b, s, :, 0:rotary_dim:2] = x1 * c - x2 * sn
                out[b, s, :, 1:rotary_dim:2] = x1 * sn + x2 * c
            else:
                x1, x2 = x[b, s, :, :half], x[b, s, :, half:rotary_dim]
                out[b, s, :, :half] = x1 * c - x2 * sn
                out[b, s, :, half:rotary_dim] = x1 * sn + x2 * c
    return out


def caches(positions, width):
    ang = np.arange(positions)[:, None] * (1.0 / 10000 ** (np.arange(width) / width))[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


MSROT = {"type": "RotaryEmbedding", "domain": "com.microsoft"}
x = g4f(2, 3, 16)
cos, sin = caches(8, 4)
rows = [[2, 3, 4]] * 2
attention.append(case("com.microsoft RotaryEmbedding [B,S,N*H], position offset [1], rotate-half",
                      {**MSROT, "attrs": {"num_heads": 2}},
                      [t(x), t(np.array([2]), "int64"), t(cos), t(sin)],
                      [t(rope(f64(x).reshape(2, 3, 2, 8), rows, f64(cos), f64(sin), 8, False).reshape(2, 3, 16))]))
rows = [[0, 1, 2], [4, 5, 6]]
attention.append(case("com.microsoft RotaryEmbedding interleaved, position_ids [B,S] (rows per sequence)",
                      {**MSROT, "attrs": {"num_heads": 2, "interleaved": 1}},
                      [t(x), t(np.array(rows), "int64"), t(cos), t(sin)],
                      [t(rope(f64(x).reshape(2, 3, 2, 8), rows, f64(cos), f64(sin), 8, True).reshape(2, 3, 16))]))
cos6, sin6 = caches(6, 5)
rows = [[3, 1, 0]] * 2
attention.append(case("com.microsoft RotaryEmbedding partial rotary_embedding_dim 4 of 8, position_ids [1,S], cache rows wider than half",
                      {**MSROT, "attrs": {"num_heads": 2, "rotary_embedding_dim": 4}},
                      [t(x), t(np.array(rows[:1]), "int64"), t(cos6), t(sin6)],
                      [t(rope(f64(x).reshape(2, 3, 2, 8), rows, f64(cos6), f64(sin6), 4, False).reshape(2, 3, 16))]))
x4 = g4f(2, 2, 3, 8)
rows = [[1, 2, 3]] * 2
attention.append(case("com.microsoft RotaryEmbedding 4-D [B,N,S,H], offset [1]",
                      {**MSROT},
                      [t(x4), t(np.array([1]), "int64"), t(cos), t(sin)],
                      [t(rope(f64(x4).transpose(0, 2, 1, 3), rows, f64(cos), f64(sin), 8, False).transpose(0, 2, 1, 3))]))


def with_past(past, cur, nkv):
    """past [B,Nkv,P,H] ++ cur [B,S,Nkv*H]: the keys as sdpa reads them ([B,P+S,Nkv*H]) and the present [B,Nkv,P+S,H]."""
    B, S, D = cur.shape
    cur4 = cur.reshape(B, S, nkv, D // nkv).transpose(0, 2, 1, 3)
    present = np.concatenate([past, cur4], axis=2)
    return present.transpose(0, 2, 1, 3).reshape(B, -1, D), present


ATT = {"type": "Attention", "domain": "mhafuse"}
q, k, v, pk, pv = g4f(2, 1, 32), g4f(2, 1, 16), g4f(2, 1, 12), g4f(2, 2, 5, 8), g4f(2, 2, 5, 6)
ka, kp = with_past(f64(pk), f64(k), 2)
va, vp = with_past(f64(pv), f64(v), 2)
attention.append(case("mhafuse.Attention decode step over past_key/past_value (P 5, Sq 1), GQA 4 on 2, Hv ≠ H, present outputs",
                      {**ATT, "attrs": {"num_heads": 4, "kv_num_heads": 2, "causal": 1}, "outputs": 3},
                      [t(q), t(k), t(v), None, None, t(pk), t(pv)],
                      [t(sdpa(f64(q), ka, va, 4, 2, causal=True)), t(kp), t(vp)]))
q, k, v, pk, pv = g4f(2, 4, 16), g4f(2, 4, 16), g4f(2, 4, 16), g4f(2, 2, 3, 8), g4f(2, 2, 3, 8)
ka, _ = with_past(f64(pk), f64(k), 2)
va, _ = with_past(f64(pv), f64(v), 2)
mask = np.where(np.array([[1] * 7, [0, 1, 1, 1, 1, 1, 1]])[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
kl = np.array([7, 5], dtype=np.int32)
attention.append(case("mhafuse.Attention chunk of 4 over a past of 3: causal offset by the past, bias and key_lengths over P+S keys",
                      {**ATT, "attrs": {"num_heads": 2, "causal": 1}},
                      [t(q), t(k), t(v), t(mask), t(kl, "int32"), t(pk), t(pv)],
                      [t(sdpa(f64(q), ka, va, 2, 2, causal=True, bias=f64(mask), key_lengths=kl))]))
q, k, v, pk, pv = g4f(1, 3, 8), g4f(1, 3, 8), g4f(1, 3, 8), np.zeros((1, 2, 0, 4), np.float32), np.zeros((1, 2, 0, 4), np.float32)
_, kp = with_past(f64(pk), f64(k), 2)
_, vp = with_past(f64(pv), f64(v), 2)
attention.append(case("mhafuse.Attention empty past (P 0, a prefill): present is this step's K/V",
                      {**ATT, "attrs": {"num_heads": 2, "causal": 1}, "outputs": 3},
                      [t(q), t(k), t(v), None, None, t(pk), t(pv)],
                      [t(sdpa(f64(q), f64(k), f64(v), 2, 2, causal=True)), t(kp), t(vp)]))
q, k, v = g4f(1, 2, 8), g4f(1, 3, 8), g4f(1, 3, 8)
_, kp = with_past(np.zeros((1, 2, 0, 4)), f64(k), 2)
_, vp = with_past(np.zeros((1, 2, 0, 4)), f64(v), 2)
attention.append(case("mhafuse.Attention without past, present outputs asked for: K/V as [B,Nkv,S,H]",
                      {**ATT, "attrs": {"num_heads": 2}, "outputs": 3},
                      [t(q), t(k), t(v)],
                      [t(sdpa(f64(q), f64(k), f64(v), 2, 2)), t(kp), t(vp)]))
attention.append(case("mhafuse.Attention over a long past (several key tiles), GQA 8 on 2, present vs reference",
                      {**ATT, "attrs": {"num_heads": 8, "kv_num_heads": 2, "causal": 1}, "outputs": 3},
                      [rnd([2, 3, 64], 31), rnd([2, 3, 16], 32), rnd([2, 3, 16], 33), None, None,
                       rnd([2, 2, 90, 8], 34), rnd([2, 2, 90, 8], 35)], "reference", 1e-4))

# ---- SimplifiedLayerNormalization (RMSNorm; what the fusion makes of spelled-out RMSNorms) ---------------
# Last, so that the rng stream of every case above stays as it was.


def rms_norm(x, gamma, axis, eps):
    x = f64(x)
    axes = tuple(range(axis % x.ndim, x.ndim))
    return x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps) * f64(gamma).reshape(x.shape[axis % x.ndim:])


x, g = f32(2, 3, 16, scale=3.0), f32(16)
for domain in ["", "com.microsoft"]:
    decoder.append(case(f"SimplifiedLayerNormalization last axis ({domain or 'ai.onnx'})",
                        {"type": "SimplifiedLayerNormalization", "domain": domain, "opset": 17,
                         "attrs": {"axis": -1, "epsilon": 1e-6, "stash_type": 1}},
                        [t(x), t(g)], [t(rms_norm(x, g, -1, np.float64(np.float32(1e-6))))]))
x, g = f32(2, 3, 4), f32(3, 4)
decoder.append(case("SimplifiedLayerNormalization axis 1 (the last two dims)",
                    {"type": "SimplifiedLayerNormalization", "opset": 17, "attrs": {"axis": 1, "epsilon": 1e-5}},
                    [t(x), t(g)], [t(rms_norm(x, g, 1, np.float64(np.float32(1e-5))))]))

for name, cases in [("linear", linear), ("attention", attention), ("activation", activation), ("shape", shape), ("decoder", decoder)]:
    (OUT / f"{name}.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"{name}.json: {len(cases)} cases")
