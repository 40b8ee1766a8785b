#include "reports/format.h"

#include <cmath>
#include <iomanip>
#include <sstream>

namespace kvbench::reports {

std::string sig(double x, int digits) {
  if (!std::isfinite(x)) return "n/a";
  if (x == 0) return "0";
  std::ostringstream out;
  const int magnitude = static_cast<int>(std::floor(std::log10(std::fabs(x))));
  if (magnitude >= 6 || magnitude < -3) {
    out << std::setprecision(digits) << x;
  } else {
    const int decimals = std::max(0, digits - 1 - magnitude);
    out << std::fixed << std::setprecision(decimals) << x;
  }
  // Trailing zeros say nothing: "16.0" -> "16", "2.50" -> "2.5" (exponent forms untouched).
  std::string text = out.str();
  if (text.find('.') != std::string::npos && text.find('e') == std::string::npos) {
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
  }
  return text;
}

std::string fixed(double x, int decimals) {
  if (!std::isfinite(x)) return "n/a";
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << x;
  return out.str();
}

std::string seconds_text(double s) {
  if (!std::isfinite(s)) return "n/a";
  if (s < 0) return "-" + seconds_text(-s);
  if (s >= 1) return sig(s) + " s";
  if (s >= 1e-3) return sig(s * 1e3) + " ms";
  if (s >= 1e-6) return sig(s * 1e6) + " us";
  return sig(s * 1e9) + " ns";
}

std::string bytes_text(double b) {
  if (!std::isfinite(b)) return "n/a";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return sig(b) + " " + units[u];
}

std::string rate_text(double r) {
  if (!std::isfinite(r)) return "n/a";
  if (r >= 1e9) return sig(r / 1e9) + " GB/s";
  if (r >= 1e6) return sig(r / 1e6) + " MB/s";
  return sig(r / 1e3) + " kB/s";
}

std::string percent(double f) {
  if (!std::isfinite(f)) return "n/a";
  if (std::fabs(f) < 5e-5) return "0%";  // rounding noise of exact ratios
  return sig(100 * f, f >= 0.1 ? 3 : 2) + "%";
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace kvbench::reports
