#include "cpu_caches.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace mso {
namespace {

std::string read_line(const std::string& path) {
  char buf[64] = {0};
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  if (std::fgets(buf, sizeof(buf), f) == nullptr) buf[0] = '\0';
  std::fclose(f);
  std::string s(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::size_t parse_size(const std::string& s) {  // "1024K", "32768K", "32M"
  if (s.empty()) return 0;
  std::size_t value = std::strtoull(s.c_str(), nullptr, 10);
  switch (s.back()) {
    case 'K': return value << 10;
    case 'M': return value << 20;
    case 'G': return value << 30;
    default: return value;
  }
}

CacheSizes from_sysfs() {
  CacheSizes c{0, 0};
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string level = read_line(dir + "level");
    if (level.empty()) break;
    if (read_line(dir + "type") == "Instruction") continue;
    const std::size_t size = parse_size(read_line(dir + "size"));
    if (level == "2") c.l2 = size;
    if (level == "3") c.l3 = size;
  }
  return c;
}

#if defined(__x86_64__) || defined(__i386__)
CacheSizes from_cpuid() {
  CacheSizes c{0, 0};
  unsigned a, b, cx, d;
  if (!__get_cpuid(0, &a, &b, &cx, &d)) return c;
  const bool amd = b == 0x68747541;  // "Auth"enticAMD
  unsigned leaf = 4;
  if (amd) {
    if (!__get_cpuid(0x80000000, &a, &b, &cx, &d) || a < 0x8000001D) return c;
    leaf = 0x8000001D;
  } else if (a < 4) {
    return c;
  }
  for (unsigned sub = 0; sub < 16; ++sub) {
    __cpuid_count(leaf, sub, a, b, cx, d);
    const unsigned type = a & 0x1f;  // 0: no more caches, 1: data, 2: instruction, 3: unified
    if (type == 0) break;
    if (type == 2) continue;
    const std::size_t size = std::size_t{((b >> 22) & 0x3ff) + 1} * (((b >> 12) & 0x3ff) + 1) *
                             ((b & 0xfff) + 1) * (std::size_t{cx} + 1);
    const unsigned level = (a >> 5) & 7;
    if (level == 2) c.l2 = size;
    if (level == 3) c.l3 = size;
  }
  return c;
}
#else
// aarch64 has no user-mode CPUID for caches (CTR_EL0 gives line sizes only, CCSIDR_EL1 is EL1's): Linux's
// sysfs is the source. Where it lists nothing (some VMs and containers), both stay 0 and tuning.cpp
// falls back to fixed thresholds.
CacheSizes from_cpuid() { return CacheSizes{0, 0}; }
#endif

}  // namespace

bool cpu_is_intel() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  return __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e;
#else
  return false;
#endif
}

CacheSizes cpu_caches() {
  static const CacheSizes sizes = [] {
    CacheSizes c = from_sysfs();
    const CacheSizes id = from_cpuid();
    if (c.l2 == 0) c.l2 = id.l2;
    if (c.l3 == 0) c.l3 = id.l3;
    return c;
  }();
  return sizes;
}

}  // namespace mso
