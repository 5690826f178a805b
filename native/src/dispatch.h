// Run-time choice of the kernel build: the widest ISA this CPU (and OS) runs, unless overridden.
#pragma once
#include "kernels.h"

namespace mhf {

// The kernels in use. Starts as the best available one (MHAFUSE_NATIVE_ISA=avx2|portable caps it).
const Kernels* active();
// Kernels by name ("avx512", "avx2", "portable"), or null when unknown or not supported by this CPU.
const Kernels* by_name(const char* name);
// Switches the kernels in use (tests run every ISA the machine has); false when not available.
bool select(const char* name);

}  // namespace mhf
