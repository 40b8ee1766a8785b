#include "harness/bench/names.h"

#include <cstdlib>
#include <sstream>
#include <vector>

namespace kvbench::bench {

namespace {

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

// "key:123" -> 123; nullopt unless the part is exactly key:<positive integer>. An aggregate
// suffix that Google Benchmark glues onto the last part ("pos:16_mean") is cut off first.
std::optional<int> value_of(const std::string& part, const std::string& key) {
  if (part.rfind(key + ":", 0) != 0) return std::nullopt;
  std::string digits = part.substr(key.size() + 1);
  const std::size_t underscore = digits.find('_');
  if (underscore != std::string::npos) digits.resize(underscore);
  if (digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const int v = std::atoi(digits.c_str());
  if (v < 1 && key != "pos") return std::nullopt;
  return v;
}

// The key of a series' size part: "T", "pos", "width", "P".
const char* size_key(BenchKind kind) {
  switch (kind) {
    case BenchKind::generate: return "T";
    case BenchKind::decode_step: return "pos";
    case BenchKind::beam: return "width";
    case BenchKind::prefix_prefill: return "P";
  }
  return "T";
}

}  // namespace

std::string kind_name(BenchKind kind) {
  switch (kind) {
    case BenchKind::generate: return "generate";
    case BenchKind::decode_step: return "decode_step";
    case BenchKind::beam: return "beam";
    case BenchKind::prefix_prefill: return "prefix_prefill";
  }
  return "generate";
}

std::string series_name(const BenchmarkId& id) {
  std::ostringstream out;
  out << kind_name(id.kind) << "/" << id.impl;
  if (id.kind == BenchKind::decode_step) out << "/threads:" << id.threads;
  return out.str();
}

std::string benchmark_name(const BenchmarkId& id) {
  std::ostringstream out;
  out << series_name(id) << "/" << size_key(id.kind) << ":" << id.size;
  return out.str();
}

std::optional<BenchmarkId> parse_benchmark_name(const std::string& name) {
  const std::vector<std::string> parts = split(name, '/');
  if (parts.size() < 3 || parts[1].empty()) return std::nullopt;
  BenchmarkId id;
  id.impl = parts[1];
  for (BenchKind kind : {BenchKind::generate, BenchKind::beam, BenchKind::prefix_prefill}) {
    if (parts[0] != kind_name(kind)) continue;
    id.kind = kind;
    const auto n = value_of(parts[2], size_key(kind));
    if (!n) return std::nullopt;
    id.size = *n;
    return id;
  }
  if (parts[0] == "decode_step" && parts.size() >= 4) {
    id.kind = BenchKind::decode_step;
    const auto threads = value_of(parts[2], "threads");
    const auto pos = value_of(parts[3], "pos");
    if (!threads || !pos) return std::nullopt;
    id.threads = *threads;
    id.size = *pos;
    return id;
  }
  return std::nullopt;
}

}  // namespace kvbench::bench
