#include "harness/json_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "harness/error.h"

namespace kvbench::json_file {

using nlohmann::json;

namespace {

// RETURNS: `c` as it can be printed on one line of a terminal.
std::string printable(unsigned char c) {
  if (c == '\n') return "\\n";
  if (c == '\t') return "\\t";
  if (c == '\r') return "\\r";
  if (c < 0x20 || c >= 0x7f) {
    static const char* hex = "0123456789abcdef";
    return std::string("\\x") + hex[c >> 4] + hex[c & 15];
  }
  return std::string(1, static_cast<char>(c));
}

std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) out += printable(c);
  return out;
}

// nlohmann's parse messages end with "last read: '<token>'", where the token can be the
// whole rest of a truncated file (an unterminated string): keep only the reason.
std::string parse_reason(const std::string& what) {
  std::string reason = what;
  const std::size_t syntax = reason.find("syntax error ");
  if (syntax != std::string::npos) reason = reason.substr(syntax + 13);
  if (reason.rfind("- ", 0) == 0) reason = reason.substr(2);
  const std::size_t last_read = reason.find("; last read: '");
  if (last_read != std::string::npos) {
    const std::size_t expected = reason.rfind("; expected ");
    reason = reason.substr(0, last_read) +
             (expected != std::string::npos && expected > last_read ? reason.substr(expected) : "");
  }
  if (reason.size() > 120) reason = reason.substr(0, 117) + "...";
  return printable(reason);
}

std::string read_all(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fail(what, " '", path, "': cannot read: ", std::strerror(errno));
  }
  require(!S_ISDIR(st.st_mode), what, " '", path, "': is a directory, not a JSON file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(what, " '", path, "': cannot read: ", std::strerror(errno));
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      fail(what, " '", path, "': cannot read: ", std::strerror(e));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

std::string child_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

bool integral(double v) { return std::isfinite(v) && std::floor(v) == v; }

}  // namespace

std::string excerpt_before(const std::string& text, std::size_t pos) {
  pos = std::min(pos, text.size());
  std::string out;
  std::size_t start = pos;
  while (start > 0) {
    const std::string c = printable(static_cast<unsigned char>(text[start - 1]));
    if (out.size() + c.size() > kExcerptChars - 3) break;
    out.insert(0, c);
    --start;
  }
  return (start > 0 ? "..." : "") + out;
}

json parse(const std::string& text, const std::string& source) {
  require(text.find_first_not_of(" \t\r\n") != std::string::npos, source,
          ": is empty (expected a JSON document)");
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte counts from 1 and points at the last character read.
    const std::size_t pos = std::min<std::size_t>(e.byte, text.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i + 1 < pos; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    fail(source, ": not valid JSON at line ", line, ", column ", column,
         pos >= text.size() ? " (the end of the input: truncated?)" : "", ": ",
         parse_reason(e.what()), "; the input there: '", excerpt_before(text, pos), "'");
  }
}

json read(const std::string& path, const std::string& what) {
  const std::string text = read_all(path, what);
  return parse(text, what + " '" + path + "'");
}

std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case json::value_t::string: {
      std::string s = printable(value.get<std::string>());
      if (s.size() > 32) s = s.substr(0, 29) + "...";
      return "the string \"" + s + "\"";
    }
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "the number " + value.dump();
    case json::value_t::object:
      return value.empty() ? "an empty object" : "an object";
    case json::value_t::array:
      return "an array of " + std::to_string(value.size());
    default:
      return "no value";
  }
}

Field::Field(const nlohmann::json& value, std::string source, std::string path)
    : value_(&value), source_(std::move(source)), path_(std::move(path)) {}

std::string Field::where() const {
  if (source_.empty()) return path_;
  return path_.empty() ? source_ : source_ + ": " + path_;
}

void Field::fail_expected(const std::string& expected) const {
  fail(where(), ": expected ", expected, ", got ", describe(*value_));
}

bool Field::has(const std::string& key) const {
  return value_->is_object() && value_->contains(key);
}

Field Field::at(const std::string& key) const {
  if (!value_->is_object()) fail_expected("an object with the field '" + key + "'");
  const auto it = value_->find(key);
  if (it == value_->end()) fail(Field(*value_, source_, child_path(path_, key)).where(), ": missing");
  return Field(*it, source_, child_path(path_, key));
}

bool Field::get(const std::string& key, Field* out) const {
  if (!value_->is_object()) fail_expected("an object");
  const auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return false;
  *out = Field(*it, source_, child_path(path_, key));
  return true;
}

std::vector<Field> Field::elements() const {
  if (!value_->is_array()) fail_expected("an array");
  std::vector<Field> out;
  for (std::size_t i = 0; i < value_->size(); ++i) {
    out.emplace_back((*value_)[i], source_, path_ + "[" + std::to_string(i) + "]");
  }
  return out;
}

std::vector<std::pair<std::string, Field>> Field::members() const {
  if (!value_->is_object()) fail_expected("an object");
  std::vector<std::pair<std::string, Field>> out;
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    out.emplace_back(it.key(), Field(it.value(), source_, child_path(path_, it.key())));
  }
  return out;
}

std::string Field::string() const {
  if (!value_->is_string()) fail_expected("a string");
  return value_->get<std::string>();
}

double Field::number() const {
  if (!value_->is_number()) fail_expected("a number");
  return value_->get<double>();
}

long long Field::integer() const {
  constexpr auto max = std::numeric_limits<long long>::max();
  if (value_->is_number_unsigned()) {
    if (value_->get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
      fail_expected("a whole number below 2^63");
    }
    return static_cast<long long>(value_->get<std::uint64_t>());
  }
  if (value_->is_number_integer()) return value_->get<long long>();
  // 1e6 is a whole number too; beyond 2^63 (or fractional) it is not one we can hold.
  if (value_->is_number_float() && integral(value_->get<double>()) &&
      std::fabs(value_->get<double>()) < 9.2e18) {
    return static_cast<long long>(value_->get<double>());
  }
  fail_expected("a whole number");
}

std::uint64_t Field::unsigned_integer() const {
  if (value_->is_number_unsigned()) return value_->get<std::uint64_t>();
  if (value_->is_number_integer()) {
    if (value_->get<long long>() < 0) fail_expected("a whole number >= 0");
    return static_cast<std::uint64_t>(value_->get<long long>());
  }
  if (value_->is_number_float() && integral(value_->get<double>()) &&
      value_->get<double>() >= 0 && value_->get<double>() < 1.8e19) {
    return static_cast<std::uint64_t>(value_->get<double>());
  }
  fail_expected("a whole number >= 0");
}

int Field::int32() const {
  if (!value_->is_number()) fail_expected("a whole number");
  const long long v = integer();
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    fail_expected("a whole number that fits in 32 bits");
  }
  return static_cast<int>(v);
}

bool Field::boolean() const {
  if (!value_->is_boolean()) fail_expected("true or false");
  return value_->get<bool>();
}

std::string Field::string_or(const std::string& key, const std::string& fallback) const {
  Field f = *this;
  return get(key, &f) ? f.string() : fallback;
}

double Field::number_or(const std::string& key, double fallback) const {
  Field f = *this;
  return get(key, &f) ? f.number() : fallback;
}

int Field::int32_or(const std::string& key, int fallback) const {
  Field f = *this;
  return get(key, &f) ? f.int32() : fallback;
}

bool Field::boolean_or(const std::string& key, bool fallback) const {
  Field f = *this;
  return get(key, &f) ? f.boolean() : fallback;
}

}  // namespace kvbench::json_file
