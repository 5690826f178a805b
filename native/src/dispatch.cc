#include "dispatch.h"

#include <cstdlib>
#include <cstring>

namespace mhf {

static bool supported(const char* name) {
  if (!std::strcmp(name, "portable")) return true;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!std::strcmp(name, "avx2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!std::strcmp(name, "avx512"))
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
  return false;
}

const Kernels* by_name(const char* name) {
  if (!supported(name)) return nullptr;
#if defined(__x86_64__) || defined(__i386__)
  if (!std::strcmp(name, "avx512")) return avx512::kernels();
  if (!std::strcmp(name, "avx2")) return avx2::kernels();
#endif
  if (!std::strcmp(name, "portable")) return portable::kernels();
  return nullptr;
}

static const Kernels* best() {
  const char* cap = std::getenv("MHAFUSE_NATIVE_ISA");
  const char* order[] = {"avx512", "avx2", "portable"};
  bool allowed = !cap || !*cap;
  for (const char* name : order) {
    if (!allowed && !std::strcmp(cap, name)) allowed = true;
    if (allowed)
      if (const Kernels* k = by_name(name)) return k;
  }
  return portable::kernels();
}

static const Kernels* g_active = nullptr;

const Kernels* active() {
  if (!g_active) g_active = best();
  return g_active;
}

bool select(const char* name) {
  const Kernels* k = by_name(name);
  if (!k) return false;
  g_active = k;
  return true;
}

}  // namespace mhf
