// The data-cache sizes this CPU reports, read once at run time.
#pragma once

#include <cstddef>

namespace mso {

struct CacheSizes {
  std::size_t l2;  // bytes of one core's L2 (0: unknown)
  std::size_t l3;  // bytes of the L3 this core shares (0: none or unknown)
};

// From Linux's /sys/devices/system/cpu/cpu0/cache, else CPUID on x86 (leaf 4 on Intel, 0x8000001D on AMD);
// on aarch64 sysfs only (0 where it lists nothing: tuning.cpp's fallback).
// Not sysconf(_SC_LEVEL3_CACHE_SIZE): glibc 2.36 reports 320 MiB for a 32 MiB L3 on an AMD EPYC VM.
CacheSizes cpu_caches();

// CPUID's vendor string is "GenuineIntel": where software prefetch was measured to pay (tuning.cpp).
bool cpu_is_intel();

}  // namespace mso
