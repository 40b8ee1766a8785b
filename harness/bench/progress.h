// The progress lines of `kvbench bench` ("[k/N] name", the bandwidths, where a series
// stopped), written alike by the runner and the bandwidth schedule.
#pragma once

#include <chrono>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>

namespace kvbench::bench {

// RETURNS: seconds of the steady clock since `start`.
double seconds_since(std::chrono::steady_clock::time_point start);

// RETURNS: "1.23 s", "45.6 ms" or "789 us" (three significant digits).
std::string format_seconds(double s);

// Writes the parts as one line to `out` (numbers to three significant digits) and flushes, so
// that a long sweep shows where it is; null `out`: nothing.
template <typename... Parts>
void say(std::ostream* out, const Parts&... parts) {
  if (!out) return;
  std::ostringstream line;
  line << std::setprecision(3);
  (line << ... << parts);
  *out << line.str() << "\n" << std::flush;
}

}  // namespace kvbench::bench
