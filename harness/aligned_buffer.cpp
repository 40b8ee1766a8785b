#include "harness/aligned_buffer.h"

#include <sys/mman.h>

#include <algorithm>

#include "harness/error.h"

namespace kvbench {

std::size_t aligned_allocation_bytes(std::size_t bytes) {
  const std::size_t align = bytes >= kHugePageBytes ? kHugePageBytes : 64;
  return std::max(align, (bytes + align - 1) / align * align);
}

AlignedBlock allocate_aligned(std::size_t bytes, const char* what) {
  const std::size_t size = aligned_allocation_bytes(bytes);
  const std::size_t align = size >= kHugePageBytes ? kHugePageBytes : 64;
  void* p = std::aligned_alloc(align, size);
  if (p == nullptr) fail(what, ": cannot allocate ", size, " bytes");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (size >= kHugePageBytes) madvise(p, size, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return AlignedBlock(static_cast<unsigned char*>(p));
}

const char* aligned_allocation_policy() {
  return "aligned_alloc (2 MiB-aligned for blocks >= 2 MiB) + madvise(MADV_HUGEPAGE), "
         "the allocator of cpu_cached's K/V (harness/aligned_buffer.h)";
}

}  // namespace kvbench
