// CLI11 validators for kvbench's numeric options, with messages a user can act on. CLI11
// puts the option's name in front, so a bad value reads "--cases: 0 is not in 1..1000000"
// or "--seconds: 'soon' is not a number", and main() prints it as a `kvbench: error:`
// (exit 2). Validators run on the text before CLI11 converts it, so they also catch what
// the conversion would reject or silently wrap (a negative seed, 2^64).
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>

#include "harness/error.h"

namespace kvbench::cli {

namespace detail {

inline bool whole_number_text(const std::string& s) {
  const std::size_t digits = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  return s.size() > digits && s.find_first_not_of("0123456789", digits) == std::string::npos;
}

inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace detail

// A whole number in [lo, hi]. "--cases: 0 is not in 1..1000000".
inline CLI::Validator integer_in(long long lo, long long hi) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        if (!detail::whole_number_text(text)) {
          return detail::quoted(text) + " is not a whole number (expected " + range + ")";
        }
        errno = 0;
        const long long v = std::strtoll(text.c_str(), nullptr, 10);
        if (errno == ERANGE || v < lo || v > hi) return text + " is not in " + range;
        return "";
      },
      range, "INTEGER_IN");
}

// A whole number >= lo, up to what a long long holds. "--kv-heads: 0 is not >= 1".
inline CLI::Validator integer_at_least(long long lo) {
  return CLI::Validator(
      [lo](std::string& text) -> std::string {
        if (!detail::whole_number_text(text)) {
          return detail::quoted(text) + " is not a whole number";
        }
        errno = 0;
        const long long v = std::strtoll(text.c_str(), nullptr, 10);
        if (errno == ERANGE && text[0] != '-') {
          return text + " is too large (at most " +
                 std::to_string(std::numeric_limits<long long>::max()) + ")";
        }
        if (errno == ERANGE || v < lo) return text + " is not >= " + std::to_string(lo);
        return "";
      },
      ">= " + std::to_string(lo), "INTEGER_AT_LEAST");
}

// A whole number in 0..2^64-1 (seeds). "--seed: -1 is not in 0..18446744073709551615".
inline CLI::Validator unsigned_64() {
  const std::string range = "0.." + std::to_string(std::numeric_limits<unsigned long long>::max());
  return CLI::Validator(
      [range](std::string& text) -> std::string {
        if (!detail::whole_number_text(text)) {
          return detail::quoted(text) + " is not a whole number (expected " + range + ")";
        }
        if (text[0] == '-') return text + " is not in " + range;
        errno = 0;
        std::strtoull(text.c_str(), nullptr, 10);
        if (errno == ERANGE) return text + " is not in " + range;
        return "";
      },
      range, "UNSIGNED_64");
}

// A finite number above `lo` (or at least `lo` when `inclusive`). "--seconds: 0 is not > 0".
inline CLI::Validator number_above(double lo, bool inclusive = false) {
  std::ostringstream bound;
  bound << (inclusive ? ">= " : "> ") << lo;
  const std::string want = bound.str();
  return CLI::Validator(
      [lo, inclusive, want](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = text.empty() ? 0 : std::strtod(text.c_str(), &end);
        if (text.empty() || end == nullptr || *end != '\0') {
          return detail::quoted(text) + " is not a number (expected " + want + ")";
        }
        if (!std::isfinite(v) || errno == ERANGE) return text + " is not a finite number";
        if (inclusive ? v < lo : v <= lo) return text + " is not " + want;
        return "";
      },
      want, "NUMBER_ABOVE");
}

// RETURNS: f(). An Error it throws is thrown again with the option's name in front
// ("--shape: unknown shape 'foo' (known: ...)"), for values checked after parsing.
template <typename F>
auto for_option(const std::string& arg, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(arg + ": " + e.what());
  }
}

}  // namespace kvbench::cli
