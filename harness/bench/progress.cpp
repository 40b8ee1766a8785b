#include "harness/bench/progress.h"

namespace kvbench::bench {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string format_seconds(double s) {
  std::ostringstream out;
  out << std::setprecision(3);
  if (s >= 1) {
    out << s << " s";
  } else if (s >= 1e-3) {
    out << s * 1e3 << " ms";
  } else {
    out << s * 1e6 << " us";
  }
  return out.str();
}

}  // namespace kvbench::bench
