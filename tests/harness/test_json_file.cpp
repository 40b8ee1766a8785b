// harness/json_file.h: errors that name the file, the JSON path and what was expected, and
// quote at most a short excerpt of the input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "harness/error.h"
#include "harness/json_file.h"

namespace kvbench::json_file {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/kvbench-json-" + std::to_string(::getpid()) +
                           "-" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(JsonFile, ReadsADocument) {
  const std::string path = temp_file("ok.json", "{\"a\": [1, 2]}");
  EXPECT_EQ(read(path, "bench output"), json::parse("{\"a\": [1, 2]}"));
  fs::remove(path);
}

TEST(JsonFile, MissingDirectoryAndEmptyAreNamed) {
  EXPECT_EQ(error_of([] { read("/nonexistent/b.json", "bench output"); }),
            "bench output '/nonexistent/b.json': cannot read: No such file or directory");
  const std::string dir = ::testing::TempDir();
  EXPECT_EQ(error_of([&] { read(dir, "bench output"); }),
            "bench output '" + dir + "': is a directory, not a JSON file");
  const std::string empty = temp_file("empty.json", "  \n");
  EXPECT_EQ(error_of([&] { read(empty, "gate measurement"); }),
            "gate measurement '" + empty + "': is empty (expected a JSON document)");
  fs::remove(empty);
}

TEST(JsonFile, AReadErrorIsNamed) {
  // Reading /proc/self/mem at offset 0 fails with EIO, even for root (for whom a chmod 000
  // file is still readable): the read error path, not only the open one.
  EXPECT_EQ(error_of([] { read("/proc/self/mem", "bench output"); }),
            "bench output '/proc/self/mem': cannot read: Input/output error");
}

TEST(JsonFile, TruncatedJsonGivesLineColumnAndAShortExcerpt) {
  // An unterminated 4 KB string: nlohmann's own message echoes all of it.
  const std::string text = "{\"benchmarks\": [\n  {\"label\": \"" + std::string(4000, 'y');
  const std::string path = temp_file("trunc.json", text);
  const std::string message = error_of([&] { read(path, "bench output"); });
  EXPECT_EQ(message.find("bench output '" + path + "': not valid JSON at line 2, column "), 0u)
      << message;
  EXPECT_NE(message.find("(the end of the input: truncated?)"), std::string::npos) << message;
  EXPECT_NE(message.find("missing closing quote"), std::string::npos) << message;
  EXPECT_LT(message.size(), path.size() + 300) << "the input is echoed: " << message;
  const std::size_t at = message.find("the input there: '");
  ASSERT_NE(at, std::string::npos) << message;
  EXPECT_LE(message.size() - at - 19, kExcerptChars) << message;
  fs::remove(path);
}

TEST(JsonFile, AnErrorInTheMiddleShowsWhatCameBeforeIt) {
  const std::string message = error_of([] { parse("{\"a\": 1,\n \"b\": tru }", "x.json"); });
  EXPECT_EQ(message.find("x.json: not valid JSON at line 2, column "), 0u) << message;
  EXPECT_EQ(message.find("truncated"), std::string::npos) << message;
  EXPECT_NE(message.find("invalid literal"), std::string::npos) << message;
  EXPECT_NE(message.find("\\n \"b\": tru"), std::string::npos) << "newline escaped: " << message;
}

TEST(JsonFile, ExcerptsAreShortAndPrintable) {
  EXPECT_EQ(excerpt_before("abc", 3), "abc");
  EXPECT_EQ(excerpt_before("a\tb\x01", 4), "a\\tb\\x01");
  const std::string e = excerpt_before(std::string(1000, 'z') + "END", 1003);
  EXPECT_LE(e.size(), kExcerptChars);
  EXPECT_EQ(e.substr(0, 3), "...");
  EXPECT_EQ(e.substr(e.size() - 3), "END");
}

TEST(JsonField, WrongTypesNameThePathAndWhatWasExpected) {
  const json doc = json::parse(R"({"benchmarks": [{"name": "a"}, {"name": 7, "real_time": "fast"}],
                                   "context": {"n": -3}})");
  const Field root(doc, "bench output 'b.json'");
  const std::vector<Field> runs = root.at("benchmarks").elements();
  EXPECT_EQ(runs[0].at("name").string(), "a");
  EXPECT_EQ(error_of([&] { runs[1].at("name").string(); }),
            "bench output 'b.json': benchmarks[1].name: expected a string, got the number 7");
  EXPECT_EQ(error_of([&] { runs[1].at("real_time").number(); }),
            "bench output 'b.json': benchmarks[1].real_time: expected a number, got the string "
            "\"fast\"");
  EXPECT_EQ(error_of([&] { runs[0].at("real_time"); }),
            "bench output 'b.json': benchmarks[0].real_time: missing");
  EXPECT_EQ(error_of([&] { root.at("context").at("n").unsigned_integer(); }),
            "bench output 'b.json': context.n: expected a whole number >= 0, got the number -3");
  EXPECT_EQ(error_of([&] { root.at("context").elements(); }),
            "bench output 'b.json': context: expected an array, got an object");
  EXPECT_EQ(runs[0].number_or("real_time", 5.0), 5.0);
  EXPECT_NE(error_of([&] { runs[1].number_or("real_time", 0.0); }).find("benchmarks[1].real_time"),
            std::string::npos);
}

TEST(JsonField, DescriptionsAreShort) {
  EXPECT_EQ(describe(json(std::string(500, 'q'))), "the string \"" + std::string(29, 'q') + "...\"");
  EXPECT_EQ(describe(json::array({1, 2, 3})), "an array of 3");
  EXPECT_EQ(describe(json()), "null");
  EXPECT_EQ(describe(json(2.5)), "the number 2.5");
}

TEST(JsonField, StrictConversionNamesTheElement) {
  const json doc = json::parse(R"({"steps": [0.5, 1, "x"], "sweep": {"16": 10, "32": -1},
                                   "big": 1e30, "whole": 1e6})");
  const Field root(doc, "", "");
  EXPECT_EQ(error_of([&] { as<std::vector<double>>(root.at("steps")); }),
            "steps[2]: expected a number, got the string \"x\"");
  EXPECT_EQ(error_of([&] { as<std::map<std::string, std::uint64_t>>(root.at("sweep")); }),
            "sweep.32: expected a whole number >= 0, got the number -1");
  EXPECT_NE(error_of([&] { as<int>(root.at("big")); }).find("big: expected a whole number"),
            std::string::npos);
  EXPECT_NE(error_of([&] { as<int>(root.at("steps").elements()[0]); }).find("steps[0]"),
            std::string::npos);
  EXPECT_EQ(as<int>(root.at("whole")), 1000000);
  EXPECT_EQ(as<std::uint64_t>(root.at("sweep").at("16")), 10u);
}

}  // namespace
}  // namespace kvbench::json_file
