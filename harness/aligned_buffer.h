// Large aligned blocks, allocated the way K/V storage is held on the host: one place, so that
// cpu_cached's K/V and the bench's read-only reference (harness/bench/bandwidth.h) are backed
// by the same kind of pages, and a bandwidth measured over the one applies to the other.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace kvbench {

// Blocks of at least this size are aligned to it and, on Linux, advised to be backed by
// transparent huge pages: a long stream then takes one TLB miss per 2 MiB, not per 4 KiB
// (where THP is in "madvise" mode, as on Debian, nothing else turns it on).
constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBlock = std::unique_ptr<unsigned char[], FreeDeleter>;

// RETURNS: the bytes allocate_aligned(bytes) really allocates: rounded up to 64 bytes, or to
// whole huge pages for blocks of at least one huge page.
std::size_t aligned_allocation_bytes(std::size_t bytes);

// RETURNS: a block of aligned_allocation_bytes(bytes), 64-byte aligned (huge-page aligned and
// MADV_HUGEPAGE-advised when large), uninitialized: large blocks are mapped lazily by the OS,
// so capacity that is never written costs address space only. Throws Error naming `what`
// when the allocation fails.
AlignedBlock allocate_aligned(std::size_t bytes, const char* what);

// How allocate_aligned backs a block, for reports ("aligned_alloc(2 MiB) + madvise(...)").
const char* aligned_allocation_policy();

}  // namespace kvbench
