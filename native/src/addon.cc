// The N-API surface: argument checking (every pointer handed to a kernel is bounds-checked against its
// typed array, so a wrong offset throws instead of corrupting memory) and the calls into the drivers.
// Errors thrown here carry code "ERR_MHAFUSE_NATIVE_ARG"; src/backends/cpu/native turns them into typed errors.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dispatch.h"
#include "gemm.h"
#include "parallel.h"
#include "threadpool.h"

namespace {

using mhf::Kernels;

[[noreturn]] void fail(Napi::Env env, const std::string& what) {
  Napi::Error e = Napi::RangeError::New(env, "mhafuse native: " + what);
  e.Set("code", Napi::String::New(env, "ERR_MHAFUSE_NATIVE_ARG"));
  throw e;
}

int64_t int_arg(const Napi::CallbackInfo& info, int i, const char* name) {
  if (!info[i].IsNumber()) fail(info.Env(), std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (v != (double)(int64_t)v || v < 0) fail(info.Env(), std::string(name) + " must be a non-negative integer");
  return (int64_t)v;
}

// A Float32Array argument whose elements [offset, offset + extent) must exist; null/undefined when optional.
float* f32(const Napi::Env& env, const Napi::Value& v, int64_t offset, int64_t extent, const char* name,
           bool optional = false) {
  if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    fail(env, std::string(name) + " must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  if (extent > 0 && (offset < 0 || offset + extent > (int64_t)a.ElementLength()))
    fail(env, std::string(name) + ": elements [" + std::to_string(offset) + ", " + std::to_string(offset + extent) +
                  ") are outside its " + std::to_string(a.ElementLength()));
  return a.Data() + (extent > 0 ? offset : 0);
}

const int32_t* i32(const Napi::Env& env, const Napi::Value& v, int64_t count, const char* name) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    fail(env, std::string(name) + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  if ((int64_t)a.ElementLength() < count) fail(env, std::string(name) + " is shorter than " + std::to_string(count));
  return a.Data();
}

// Elements a rows × cols matrix with leading dimension ld spans.
int64_t extent(int64_t rows, int64_t cols, int64_t ld) { return rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0; }

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", mhf::active()->name);
  o.Set("threads", mhf::pool().threads());
  Napi::Array isas = Napi::Array::New(env);
  uint32_t i = 0;
  for (const char* n : {"avx512", "avx2", "portable"})
    if (mhf::by_name(n)) isas.Set(i++, n);
  o.Set("isas", isas);
  return o;
}

Napi::Value SelectIsa(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), mhf::select(info[0].As<Napi::String>().Utf8Value().c_str()));
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int64_t n = int_arg(info, 0, "threads");
  if (n < 1 || n > 1024) fail(info.Env(), "threads must be in 1..1024");
  mhf::set_threads((int)n);
  return info.Env().Undefined();
}

// packB(b, offset, ldb, K, N, trans) → external handle
Napi::Value PackB(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t off = int_arg(info, 1, "bOffset"), ldb = int_arg(info, 2, "ldb");
  const int64_t K = int_arg(info, 3, "K"), N = int_arg(info, 4, "N");
  const bool trans = info[5].ToBoolean();
  if (K > INT32_MAX || N > INT32_MAX) fail(env, "K and N must fit in int32");
  if ((trans ? K : N) > ldb && K > 0 && N > 0) fail(env, "ldb is smaller than a row of B");
  const float* b = f32(env, info[0], off, trans ? extent(N, K, ldb) : extent(K, N, ldb), "B");
  mhf::PackedB* p = mhf::pack_b(mhf::active(), b, ldb, trans, (int)K, (int)N);
  Napi::MemoryManagement::AdjustExternalMemory(env, p->bytes());
  return Napi::External<mhf::PackedB>::New(env, p, [](Napi::Env env, mhf::PackedB* p) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -p->bytes());
    delete p;
  });
}

// gemm(M, a, aOffset, lda, packed, c, cOffset, ldc, bias|null, act, residual|null, rOffset, ldr)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t M = int_arg(info, 0, "M"), aOff = int_arg(info, 2, "aOffset"), lda = int_arg(info, 3, "lda");
  if (!info[4].IsExternal()) fail(env, "packed must be a handle from packB");
  const mhf::PackedB& b = *info[4].As<Napi::External<mhf::PackedB>>().Data();
  const int64_t cOff = int_arg(info, 6, "cOffset"), ldc = int_arg(info, 7, "ldc");
  const int64_t act = int_arg(info, 9, "activation");
  const int64_t rOff = int_arg(info, 11, "residualOffset"), ldr = int_arg(info, 12, "ldr");
  if (M > INT32_MAX) fail(env, "M must fit in int32");
  if (b.K > lda && M > 0) fail(env, "lda is smaller than K");
  if (b.N > ldc && M > 0) fail(env, "ldc is smaller than N");
  if (act < 0 || act > 4)
    fail(env, "activation must be 0 (none), 1 (GELU erf), 2 (GELU tanh), 3 (ReLU) or 4 (Sigmoid)");
  const float* a = f32(env, info[1], aOff, extent(M, b.K, lda), "A");
  float* c = f32(env, info[5], cOff, extent(M, b.N, ldc), "C");
  const float* bias = f32(env, info[8], 0, b.N, "bias", true);
  const float* res = f32(env, info[10], rOff, extent(M, b.N, ldr), "residual", true);
  if (res && b.N > ldr && M > 1) fail(env, "ldr is smaller than N");
  mhf::Epilogue e{bias, (int)act, res, (int64_t)ldr};
  mhf::gemm((int)M, a, lda, b, c, ldc, e);
  return env.Undefined();
}

// layerNorm(x, xOff, y, yOff, rows, d, eps, gamma, beta|null, mean|null, invStd|null)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t xo = int_arg(info, 1, "xOffset"), yo = int_arg(info, 3, "yOffset");
  const int64_t rows = int_arg(info, 4, "rows"), d = int_arg(info, 5, "d");
  const float eps = info[6].As<Napi::Number>().FloatValue();
  const float* x = f32(env, info[0], xo, rows * d, "x");
  float* y = f32(env, info[2], yo, rows * d, "y");
  const float* g = f32(env, info[7], 0, d, "gamma");
  const float* b = f32(env, info[8], 0, d, "beta", true);
  float* mean = f32(env, info[9], 0, rows, "mean", true);
  float* inv = f32(env, info[10], 0, rows, "invStd", true);
  if (rows > 0 && d > 0) mhf::layer_norm(*mhf::active(), x, y, rows, (int)d, eps, g, b, mean, inv);
  return env.Undefined();
}

// skipLayerNorm(x, xOff, skip, skipOff, skipRows, bias|null, gamma, beta|null, y, yOff, sum|null, sumOff, rows, d, eps)
Napi::Value SkipLayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t xo = int_arg(info, 1, "xOffset"), so = int_arg(info, 3, "skipOffset");
  const int64_t skipRows = int_arg(info, 4, "skipRows");
  const int64_t yo = int_arg(info, 9, "yOffset"), sumo = int_arg(info, 11, "sumOffset");
  const int64_t rows = int_arg(info, 12, "rows"), d = int_arg(info, 13, "d");
  const float eps = info[14].As<Napi::Number>().FloatValue();
  if (rows > 0 && skipRows < 1) fail(env, "skipRows must be at least 1");
  const float* x = f32(env, info[0], xo, rows * d, "x");
  const float* skip = f32(env, info[2], so, skipRows * d, "skip");
  const float* bias = f32(env, info[5], 0, d, "bias", true);
  const float* g = f32(env, info[6], 0, d, "gamma");
  const float* b = f32(env, info[7], 0, d, "beta", true);
  float* y = f32(env, info[8], yo, rows * d, "y");
  float* sum = f32(env, info[10], sumo, rows * d, "sum", true);
  if (rows > 0 && d > 0)
    mhf::skip_layer_norm(*mhf::active(), x, skip, skipRows, bias, g, b, y, sum, rows, (int)d, eps);
  return env.Undefined();
}

// softmax(x, xOff, y, yOff, rows, d)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t xo = int_arg(info, 1, "xOffset"), yo = int_arg(info, 3, "yOffset");
  const int64_t rows = int_arg(info, 4, "rows"), d = int_arg(info, 5, "d");
  const float* x = f32(env, info[0], xo, rows * d, "x");
  float* y = f32(env, info[2], yo, rows * d, "y");
  if (rows > 0 && d > 0) mhf::softmax(*mhf::active(), x, y, rows, (int)d);
  return env.Undefined();
}

// activation(x, xOff, y, yOff, n, bias|null, act): y = act(x + bias[i % bias.length])
Napi::Value Activation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t xo = int_arg(info, 1, "xOffset"), yo = int_arg(info, 3, "yOffset"), n = int_arg(info, 4, "n");
  const int64_t act = int_arg(info, 6, "activation");
  if (act < 0 || act > 4) fail(env, "activation must be 0 to 4");
  const float* x = f32(env, info[0], xo, n, "x");
  float* y = f32(env, info[2], yo, n, "y");
  const float* bias = f32(env, info[5], 0, 1, "bias", true);
  const int64_t bl = bias ? info[5].As<Napi::Float32Array>().ElementLength() : 0;
  if (n > 0) mhf::activation(*mhf::active(), x, y, n, bias, bl, (int)act);
  return env.Undefined();
}

// add(a, aOff, b, bOff, bLen, y, yOff, n): y = a + b[i % bLen]
Napi::Value Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t ao = int_arg(info, 1, "aOffset"), bo = int_arg(info, 3, "bOffset"), bl = int_arg(info, 4, "bLength");
  const int64_t yo = int_arg(info, 6, "yOffset"), n = int_arg(info, 7, "n");
  if (n > 0 && bl < 1) fail(env, "bLength must be at least 1");
  const float* a = f32(env, info[0], ao, n, "a");
  const float* b = f32(env, info[2], bo, bl, "b");
  float* y = f32(env, info[5], yo, n, "y");
  if (n > 0) mhf::add(*mhf::active(), a, b, y, n, bl);
  return env.Undefined();
}

// allFinite(x, offset, n): whether x[offset, offset + n) holds no NaN or ±Infinity. The fused attention checks
// its inputs with it before taking the fast kernels (which are exact for finite inputs only): a float is not
// finite when its exponent bits are all ones. The scan runs at the selected ISA's width on the pool
// (parallel.h all_finite); a hit stops the tasks at their next 4096 elements.
Napi::Value AllFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t off = int_arg(info, 1, "offset"), n = int_arg(info, 2, "n");
  const float* x = f32(env, info[0], off, n, "x");
  return Napi::Boolean::New(env, n <= 0 || mhf::all_finite(*mhf::active(), x, n));
}

int64_t num(const Napi::Object& o, const char* key, int64_t dflt, bool required = true) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return dflt;
  if (!v.IsNumber()) fail(o.Env(), std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != (double)(int64_t)d) fail(o.Env(), std::string(key) + " must be an integer");
  return (int64_t)d;
}

mhf::Strided layout(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject()) fail(o.Env(), std::string(key) + " must be a layout {offset, batchStride, headStride, seqStride}");
  Napi::Object l = v.As<Napi::Object>();
  mhf::Strided s{num(l, "offset", 0), num(l, "batchStride", 0), num(l, "headStride", 0), num(l, "seqStride", 0)};
  if (s.offset < 0 || s.batch < 0 || s.head < 0 || s.seq < 0) fail(o.Env(), std::string(key) + ": negative stride");
  return s;
}

// Highest element a layout reaches + 1 for batch × heads × seq rows of width w (0 when empty).
int64_t reach(const mhf::Strided& s, int64_t batch, int64_t heads, int64_t seq, int64_t w) {
  if (batch <= 0 || heads <= 0 || seq <= 0 || w <= 0) return 0;
  return (batch - 1) * s.batch + (heads - 1) * s.head + (seq - 1) * s.seq + w;
}

// attention({batch, numHeads, kvNumHeads, seqQ, seqKV, headSize, vHeadSize, scale, q, qLayout, k, kLayout, v,
//   vLayout, out, outLayout, keyLengths?, queryLengths?, cuSeqlens?, causalOffset?, bias?})
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) fail(env, "attention takes one options object");
  Napi::Object o = info[0].As<Napi::Object>();
  mhf::AttentionProblem p{};
  p.batch = (int)num(o, "batch", 0);
  p.heads = (int)num(o, "numHeads", 0);
  p.kvHeads = (int)num(o, "kvNumHeads", p.heads, false);
  p.seqQ = (int)num(o, "seqQ", 0);
  p.seqKV = (int)num(o, "seqKV", 0);
  p.headSize = (int)num(o, "headSize", 0);
  p.vHeadSize = (int)num(o, "vHeadSize", p.headSize, false);
  if (p.batch < 0 || p.heads < 1 || p.kvHeads < 1 || p.heads % p.kvHeads || p.seqQ < 0 || p.seqKV < 0 ||
      p.headSize < 0 || p.vHeadSize < 0)
    fail(env, "attention: bad sizes (heads must be a positive multiple of kvNumHeads)");
  p.scale = o.Get("scale").As<Napi::Number>().FloatValue();
  p.ql = layout(o, "qLayout");
  p.kl = layout(o, "kLayout");
  p.vl = layout(o, "vLayout");
  p.ol = layout(o, "outLayout");
  p.cuSeqlens = i32(env, o.Get("cuSeqlens"), p.batch + 1, "cuSeqlens");
  int64_t B = p.batch, Sq = p.seqQ, Skv = p.seqKV;
  if (p.cuSeqlens) {
    // Every sequence is read at offset + cu[b]·seqStride; the last token bounds all of them.
    for (int b = 0; b < p.batch; b++)
      if (p.cuSeqlens[b] < 0 || p.cuSeqlens[b + 1] < p.cuSeqlens[b]) fail(env, "cuSeqlens must be non-decreasing from 0");
    B = 1;
    Sq = Skv = p.batch > 0 ? p.cuSeqlens[p.batch] : 0;
  }
  p.q = f32(env, o.Get("q"), 0, reach(p.ql, B, p.heads, Sq, p.headSize), "q");
  p.k = f32(env, o.Get("k"), 0, reach(p.kl, B, p.kvHeads, Skv, p.headSize), "k");
  p.v = f32(env, o.Get("v"), 0, reach(p.vl, B, p.kvHeads, Skv, p.vHeadSize), "v");
  p.out = f32(env, o.Get("out"), 0, reach(p.ol, B, p.heads, Sq, p.vHeadSize), "out");
  p.keyLengths = i32(env, o.Get("keyLengths"), p.batch, "keyLengths");
  p.queryLengths = i32(env, o.Get("queryLengths"), p.batch, "queryLengths");
  Napi::Value causal = o.Get("causalOffset");
  p.causal = !causal.IsUndefined() && !causal.IsNull();
  p.causalOffset = p.causal ? (int)causal.As<Napi::Number>().Int32Value() : 0;
  Napi::Value bias = o.Get("bias");
  if (!bias.IsUndefined() && !bias.IsNull()) {
    Napi::Object bo = bias.As<Napi::Object>();
    p.biasBatch = num(bo, "batchStride", 0);
    p.biasHead = num(bo, "headStride", 0);
    p.biasRow = num(bo, "rowStride", 0);
    const int64_t off = num(bo, "offset", 0);
    if (off < 0 || p.biasBatch < 0 || p.biasHead < 0 || p.biasRow < 0) fail(env, "bias: negative stride");
    const int64_t rowsQ = p.cuSeqlens ? Sq : p.seqQ, keys = p.cuSeqlens ? Skv : p.seqKV;
    const int64_t ext = B > 0 && rowsQ > 0 && keys > 0
                            ? (p.batch - 1) * p.biasBatch + (p.heads - 1) * p.biasHead + (rowsQ - 1) * p.biasRow + keys
                            : 0;
    p.bias = f32(env, bo.Get("data"), off, ext, "bias.data");
  }
  mhf::attention(*mhf::active(), p);
  return env.Undefined();
}

// The bytes of an ArrayBuffer or of a typed array / DataView's window, and how many there are.
std::pair<uint8_t*, int64_t> bytes_of(const Napi::Env& env, const Napi::Value& v, const char* name) {
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer a = v.As<Napi::ArrayBuffer>();
    return {static_cast<uint8_t*>(a.Data()), (int64_t)a.ByteLength()};
  }
  if (v.IsTypedArray()) {
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    return {static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), (int64_t)t.ByteLength()};
  }
  if (v.IsDataView()) {
    Napi::DataView d = v.As<Napi::DataView>();
    return {static_cast<uint8_t*>(d.ArrayBuffer().Data()) + d.ByteOffset(), (int64_t)d.ByteLength()};
  }
  fail(env, std::string(name) + " must be an ArrayBuffer or an ArrayBuffer view");
}

// copyBytes(dst, dstOffset, src, srcOffset, n): n bytes, on the pool (parallel.h says why); overlapping ranges
// are moved on this thread.
Napi::Value CopyBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto [dst, dlen] = bytes_of(env, info[0], "dst");
  const auto [src, slen] = bytes_of(env, info[2], "src");
  const int64_t doff = int_arg(info, 1, "dstOffset"), soff = int_arg(info, 3, "srcOffset");
  const int64_t n = int_arg(info, 4, "n");
  // n > len || off > len - n, not off + n > len: offsets and counts up to 2^53 would overflow the sum.
  auto check = [&](int64_t off, int64_t len, const char* name) {
    if (n > len || off > len - n)
      fail(env, std::string(name) + ": bytes [" + std::to_string(off) + ", " + std::to_string(off + n) +
                    ") are outside its " + std::to_string(len));
  };
  check(doff, dlen, "dst");
  check(soff, slen, "src");
  if (n <= 0) return env.Undefined();
  uint8_t* d = dst + doff;
  const uint8_t* from = src + soff;
  // Overlapping ranges (views of one buffer) as TypedArray.set copies them: memmove, on this thread.
  if (d < from + n && from < d + n)
    std::memmove(d, from, (size_t)n);
  else
    mhf::copy_bytes(d, from, n);
  return env.Undefined();
}

// fmaProbe(iterations) → flops done by register-only FMAs on every pool thread (time it to get the peak).
Napi::Value FmaProbe(const Napi::CallbackInfo& info) {
  struct Ctx {
    const Kernels* k;
    int64_t iters;
    std::atomic<double> flops{0};
  } ctx{mhf::active(), int_arg(info, 0, "iterations")};
  mhf::ThreadPool& tp = mhf::pool();
  // Many small tasks, so a worker that wakes late still gets its share and the result is the aggregate rate.
  tp.run(16 * tp.threads(), [](void* p, int) {
    Ctx& c = *static_cast<Ctx*>(p);
    const double f = c.k->fma_probe(c.iters);
    double old = c.flops.load();
    while (!c.flops.compare_exchange_weak(old, old + f)) {
    }
  }, &ctx);
  return Napi::Number::New(info.Env(), ctx.flops.load());
}

// poolHandoff(jobs, pauseMicros) → the median and the 90th percentile of `jobs` fork-joins through the pool, in
// nanoseconds: each job is one task per pool thread, every task waiting until all have started (so every worker
// takes part, not only the calling thread), the caller timing run() from the call to its return. pauseMicros
// sleeps the caller before each job: 0 measures the hand-off to spinning workers (a model run's kernels follow
// each other within microseconds), a pause past the spin window measures the wake-up of sleeping ones.
Napi::Value PoolHandoff(const Napi::CallbackInfo& info) {
  const int64_t jobs = int_arg(info, 0, "jobs"), pause = int_arg(info, 1, "pauseMicros");
  if (jobs < 1) fail(info.Env(), "jobs must be at least 1");
  mhf::ThreadPool& tp = mhf::pool();
  struct Ctx {
    std::atomic<int> started{0};
    std::atomic<bool> serial{false};
    int tasks;
  } ctx;
  ctx.tasks = tp.threads();
  std::vector<double> ns;
  ns.reserve((size_t)jobs);
  for (int64_t j = 0; j < jobs; j++) {
    if (pause > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause));
    ctx.started.store(0);
    const auto t0 = std::chrono::steady_clock::now();
    tp.run(ctx.tasks, [](void* p, int) {
      Ctx& c = *static_cast<Ctx*>(p);
      c.started.fetch_add(1);
      // run() executes the tasks one after another on the caller when another thread holds the pool: then the
      // others never start, and waiting for them would never end. A second is far past any hand-off.
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      for (int i = 0; c.started.load() < c.tasks; i++)
        if ((i & 1023) == 1023 && std::chrono::steady_clock::now() > give_up) {
          c.serial.store(true);
          return;
        }
    }, &ctx);
    ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
    if (ctx.serial.load()) fail(info.Env(), "poolHandoff: the pool's threads did not all take part (is another thread using it?)");
  }
  std::sort(ns.begin(), ns.end());
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("median", ns[ns.size() / 2]);
  o.Set("p90", ns[(ns.size() * 9) / 10]);
  o.Set("threads", ctx.tasks);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("selectIsa", Napi::Function::New(env, SelectIsa));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("packB", Napi::Function::New(env, PackB));
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("skipLayerNorm", Napi::Function::New(env, SkipLayerNorm));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("activation", Napi::Function::New(env, Activation));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("allFinite", Napi::Function::New(env, AllFinite));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("copyBytes", Napi::Function::New(env, CopyBytes));
  exports.Set("fmaProbe", Napi::Function::New(env, FmaProbe));
  exports.Set("poolHandoff", Napi::Function::New(env, PoolHandoff));
  return exports;
}

}  // namespace

NODE_API_MODULE(mhafuse_native, Init)
