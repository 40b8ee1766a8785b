// kvbench::Error: the one exception type kvbench raises for bad arguments, bad state and
// failures of the machinery underneath (CUDA, files). Messages name the bad argument and
// its value, e.g. "decode: sequence id 7 is unknown (live ids: 0, 1)".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace kvbench {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& out, const T& first, const Rest&... rest) {
  out << first;
  append_all(out, rest...);
}
}  // namespace detail

// Builds a message from pieces, as std::ostream would print them, and throws Error.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream out;
  detail::append_all(out, parts...);
  throw Error(out.str());
}

// Throws Error(message pieces) unless `condition` holds.
template <typename... Parts>
void require(bool condition, const Parts&... parts) {
  if (!condition) fail(parts...);
}

}  // namespace kvbench
