// Sweeps of sequence lengths, as `kvbench bench --tokens` and `--positions` take them.
#pragma once

#include <string>
#include <vector>

namespace kvbench::bench {

// Parses a comma-separated list whose items are each a number or a range:
//   "1000"       one value
//   "A..B"       A, 2A, 4A, ... up to B (doubling; B itself only when it is on the way)
//   "A..B:xK"    A, A*K, A*K^2, ... up to B   (K >= 2)
//   "A..B:+K"    A, A+K, A+2K, ... up to B    (K >= 1)
// e.g. "16..4096" or "100,200,500..2000:+500".
// RETURNS: the values sorted ascending, duplicates removed; every value >= 1.
// Throws Error naming the bad item and the whole text on anything else.
std::vector<int> parse_sweep(const std::string& text);

// RETURNS: the values of `a` and `b` together, sorted ascending, duplicates removed (the
// runner's union of two lists of sizes or of thread counts).
std::vector<int> merge_sweeps(std::vector<int> a, const std::vector<int>& b);

// RETURNS: "16, 32, 64" (for messages).
std::string format_sweep(const std::vector<int>& values);

}  // namespace kvbench::bench
