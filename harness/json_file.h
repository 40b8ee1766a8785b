// Reading JSON that a user hands kvbench (bench outputs for `report`, gate measurements), with
// errors a user can act on: each names the file, the JSON path of the field (for example
// benchmarks[3].real_time) and what was expected, and quotes at most a short excerpt of the
// input. `report` and `gate` both read their files through here.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kvbench::json_file {

// The longest excerpt of the input an error message quotes (characters).
inline constexpr std::size_t kExcerptChars = 60;

// Reads and parses the JSON file at `path`.
// RETURNS: the document.
// Throws Error "<what> 'PATH': ..." when the path is missing, a directory, not readable, empty
// or not valid JSON (then with the line, column and a short excerpt where parsing stopped).
nlohmann::json read(const std::string& path, const std::string& what);

// Parses `text` as JSON; `source` names it in errors ("<source>: not valid JSON: ...").
nlohmann::json parse(const std::string& text, const std::string& source);

// RETURNS: at most kExcerptChars printable characters of `text` ending at `pos` (where a
// parser stopped), control characters escaped, "..." where it was cut.
std::string excerpt_before(const std::string& text, std::size_t pos);

// RETURNS: a short description of a value for "expected X, got Y": "the string \"fast\"",
// "the number 3", "an object", "an array of 4", "null", "true". Strings are cut short.
std::string describe(const nlohmann::json& value);

// One value inside a document, with the document's name and the value's JSON path, so that
// a wrong or missing field is reported where it is. Holds a reference: the document must
// outlive it.
class Field {
 public:
  // `source` names the document in errors (a file name; "" for none); `path` is where
  // `value` sits in it.
  Field(const nlohmann::json& value, std::string source, std::string path = "");

  const nlohmann::json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  // RETURNS: "SOURCE: PATH" (or "SOURCE" at the top level, "PATH" without a source), the
  // start of every error.
  std::string where() const;

  bool is_object() const { return value_->is_object(); }
  // RETURNS: whether this is an object holding `key`.
  bool has(const std::string& key) const;
  // The member `key`. Throws Error "SOURCE: PATH.key: missing" (or PATH: expected an object).
  Field at(const std::string& key) const;
  // The member `key` when present and not null (absent and null both mean "not given").
  // RETURNS: false when absent; throws Error when this is not an object.
  bool get(const std::string& key, Field* out) const;
  // The elements of an array. Throws Error unless this is an array.
  std::vector<Field> elements() const;
  // The members of an object, in the document's order. Throws Error unless an object.
  std::vector<std::pair<std::string, Field>> members() const;

  // Each throws Error "SOURCE: PATH: expected <kind>, got <describe(value)>".
  std::string string() const;
  double number() const;                  // any JSON number
  long long integer() const;              // a whole number that fits in 64 signed bits
  std::uint64_t unsigned_integer() const;  // a whole number >= 0 that fits in 64 bits
  int int32() const;                      // a whole number that fits in an int
  bool boolean() const;

  // Member `key` converted, or `fallback` when it is absent or null; present with another
  // type, an Error naming it.
  std::string string_or(const std::string& key, const std::string& fallback) const;
  double number_or(const std::string& key, double fallback) const;
  int int32_or(const std::string& key, int fallback) const;
  bool boolean_or(const std::string& key, bool fallback) const;

  [[noreturn]] void fail_expected(const std::string& expected) const;

 private:
  const nlohmann::json* value_;
  std::string source_;
  std::string path_;
};

// Strict conversion of a value for typed readers (the gate's measurements): T is one of
// std::string, double, int, std::int64_t, std::uint64_t, bool, or a std::vector / a
// std::map<std::string, ...> of those. Throws Error naming the element's path.
template <typename T>
struct Convert;

template <typename T>
T as(const Field& f) {
  return Convert<T>::from(f);
}

template <>
struct Convert<std::string> {
  static std::string from(const Field& f) { return f.string(); }
};
template <>
struct Convert<double> {
  static double from(const Field& f) { return f.number(); }
};
template <>
struct Convert<int> {
  static int from(const Field& f) { return f.int32(); }
};
template <>
struct Convert<long> {
  static long from(const Field& f) { return static_cast<long>(f.integer()); }
};
template <>
struct Convert<long long> {
  static long long from(const Field& f) { return f.integer(); }
};
template <>
struct Convert<unsigned long> {
  static unsigned long from(const Field& f) { return static_cast<unsigned long>(f.unsigned_integer()); }
};
template <>
struct Convert<unsigned long long> {
  static unsigned long long from(const Field& f) { return f.unsigned_integer(); }
};
template <>
struct Convert<bool> {
  static bool from(const Field& f) { return f.boolean(); }
};
template <typename T>
struct Convert<std::vector<T>> {
  static std::vector<T> from(const Field& f) {
    std::vector<T> out;
    for (const Field& e : f.elements()) out.push_back(as<T>(e));
    return out;
  }
};
template <typename T>
struct Convert<std::map<std::string, T>> {
  static std::map<std::string, T> from(const Field& f) {
    std::map<std::string, T> out;
    for (const auto& [key, value] : f.members()) out[key] = as<T>(value);
    return out;
  }
};

}  // namespace kvbench::json_file
