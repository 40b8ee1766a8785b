#include "harness/bench/sweep.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "harness/error.h"

namespace kvbench::bench {

namespace {

// Parses a whole decimal integer in [1, 2^31); `what` names it in errors.
long long parse_count(const std::string& piece, const std::string& item, const std::string& text) {
  require(!piece.empty() && piece.find_first_not_of("0123456789") == std::string::npos,
          "sweep '", text, "': item '", item, "' has '", piece,
          "' where a positive whole number belongs");
  errno = 0;
  const long long value = std::strtoll(piece.c_str(), nullptr, 10);
  require(errno == 0 && value >= 1 && value <= 0x7fffffff, "sweep '", text, "': item '", item,
          "': value ", piece, " is out of range [1, 2147483647]");
  return value;
}

void append_range(const std::string& item, const std::string& text, std::vector<int>& out) {
  const std::size_t dots = item.find("..");
  const std::size_t colon = item.find(':', dots);
  const std::string lo_text = item.substr(0, dots);
  const std::string hi_text =
      item.substr(dots + 2, colon == std::string::npos ? std::string::npos : colon - dots - 2);
  const long long lo = parse_count(lo_text, item, text);
  const long long hi = parse_count(hi_text, item, text);
  require(lo <= hi, "sweep '", text, "': range '", item, "' runs backwards (", lo, " > ", hi, ")");
  char op = 'x';
  long long step = 2;
  if (colon != std::string::npos) {
    const std::string step_text = item.substr(colon + 1);
    require(step_text.size() >= 2 && (step_text[0] == 'x' || step_text[0] == '+'), "sweep '",
            text, "': range '", item, "' has step '", step_text, "' (expected xK or +K)");
    op = step_text[0];
    step = parse_count(step_text.substr(1), item, text);
    require(op == '+' || step >= 2, "sweep '", text, "': range '", item,
            "': a multiplying step must be >= 2, got x", step);
  }
  for (long long v = lo; v <= hi; v = (op == 'x') ? v * step : v + step) {
    out.push_back(static_cast<int>(v));
  }
}

}  // namespace

std::vector<int> parse_sweep(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
    require(!item.empty(), "sweep '", text, "' has an empty item");
    if (item.find("..") != std::string::npos) {
      append_range(item, text, out);
    } else {
      out.push_back(static_cast<int>(parse_count(item, item, text)));
    }
  }
  require(!out.empty(), "sweep '", text, "' is empty");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<int> merge_sweeps(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

std::string format_sweep(const std::vector<int>& values) {
  std::ostringstream out;
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  return out.str();
}

}  // namespace kvbench::bench
