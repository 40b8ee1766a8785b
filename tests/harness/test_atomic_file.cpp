// harness/atomic_file.h: outputs replaced whole or not at all, and unwritable paths found
// before any work.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/atomic_file.h"
#include "harness/error.h"

namespace kvbench {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void put(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A fresh directory per test, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    path = ::testing::TempDir() + "/kvbench-atomic-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
  // RETURNS: the names in the directory, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
};

// RETURNS: the message of the Error f() throws ("" when it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// While alive: files may grow to `bytes` only, and a write past that fails with EFBIG
// instead of killing the process with SIGXFSZ. A write that fails part-way, as on a full disk.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_;
};

TEST(AtomicFile, ReplacesTheFileWholeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("out.json");
  put(path, "old contents");
  write_file_atomically(path, "{\"new\": true}\n", "--out");
  EXPECT_EQ(slurp(path), "{\"new\": true}\n");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"out.json"});
}

TEST(AtomicFile, AWriteFailingPartWayLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("bench.json");
  put(path, "the old, complete output");
  const std::string big(1 << 20, 'x');  // far past the limit: the write fails part-way
  std::string message;
  {
    FileSizeLimit limit(64 * 1024);
    message = error_of([&] { write_file_atomically(path, big, "--out"); });
  }
  EXPECT_NE(message.find("--out: cannot write '" + path + "': File too large"), std::string::npos)
      << message;
  EXPECT_EQ(slurp(path), "the old, complete output");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"bench.json"}) << "a temporary file was left";
}

TEST(AtomicFile, TheTemporaryFileLivesBesideTheTarget) {
  EXPECT_EQ(temp_path_for("/a/b/x.json"), "/a/b/.x.json.tmp." + std::to_string(::getpid()));
  EXPECT_EQ(temp_path_for("x.json"), "./.x.json.tmp." + std::to_string(::getpid()));
  EXPECT_EQ(temp_path_for("/x.json"), "/.x.json.tmp." + std::to_string(::getpid()));
}

TEST(AtomicFile, UnwritablePathsAreNamedErrorsBeforeAnyWrite) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { check_writable(dir.file("missing/x.json"), "--out"); }),
            "--out: cannot write '" + dir.file("missing/x.json") + "': directory '" +
                dir.file("missing") + "' does not exist");
  EXPECT_EQ(error_of([&] { check_writable(dir.path, "--json"); }),
            "--json: cannot write '" + dir.path + "': it is a directory");
  put(dir.file("plain"), "x");
  EXPECT_NE(error_of([&] { check_writable(dir.file("plain/x.json"), "--out"); })
                .find("'" + dir.file("plain") + "' is not a directory"),
            std::string::npos);
  // A rename would replace a device node: refused.
  EXPECT_NE(error_of([] { check_writable("/dev/null", "--out"); }).find("not a regular file"),
            std::string::npos);
  EXPECT_NE(error_of([] { check_writable("", "--out"); }).find("--out: an output file name"),
            std::string::npos);
  // A writable path passes and leaves nothing behind (the probe is removed).
  EXPECT_EQ(error_of([&] { check_writable(dir.file("new.json"), "--out"); }), "");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"plain"});
}

TEST(AtomicFile, ADirectoryWithoutWriteAccessIsFoundByTheProbe) {
  TempDir dir;
  // Root writes into a chmod 555 directory; nobody creates files in sysfs's top level.
  const bool root = ::geteuid() == 0;
  const std::string ro = root ? "/sys" : dir.file("ro");
  if (!root) {
    fs::create_directories(ro);
    ::chmod(ro.c_str(), 0555);
  }
  const std::string message = error_of([&] { check_writable(ro + "/x.json", "--out"); });
  if (!root) ::chmod(ro.c_str(), 0755);
  EXPECT_NE(message.find("--out: cannot write '" + ro + "/x.json': cannot create a file in '" +
                         ro + "': "),
            std::string::npos)
      << message;
}

TEST(AtomicFile, ASymbolicLinkIsWrittenThroughAndKept) {
  TempDir dir;
  put(dir.file("real.json"), "old");
  fs::create_symlink("real.json", dir.file("link.json"));
  write_file_atomically(dir.file("link.json"), "new");
  EXPECT_TRUE(fs::is_symlink(dir.file("link.json")));
  EXPECT_EQ(slurp(dir.file("real.json")), "new");
}

TEST(AtomicFile, OutputDirectoriesAreCreatedOrNamed) {
  TempDir dir;
  prepare_output_directory(dir.file("a/b/c"), "--out");
  EXPECT_TRUE(fs::is_directory(dir.file("a/b/c")));
  EXPECT_TRUE(fs::is_empty(dir.file("a/b/c"))) << "the probe file was left behind";
  put(dir.file("file"), "x");
  EXPECT_NE(error_of([&] { prepare_output_directory(dir.file("file"), "--out"); })
                .find("it exists and is not a directory"),
            std::string::npos);
  EXPECT_NE(error_of([&] { prepare_output_directory(dir.file("file/sub"), "--out"); })
                .find("--out: cannot create the output directory"),
            std::string::npos);
}

TEST(AtomicOutput, UncommittedOutputLeavesTheTargetAndNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("plot.svg");
  put(path, "old plot");
  {
    AtomicOutput out(path, "--out");
    put(out.temp_path(), "half a plot");  // the writer failed part-way; no commit
  }
  EXPECT_EQ(slurp(path), "old plot");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"plot.svg"});
  {
    AtomicOutput out(path, "--out");
    put(out.temp_path(), "new plot");
    out.commit();
  }
  EXPECT_EQ(slurp(path), "new plot");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"plot.svg"});
}

TEST(AtomicOutput, AnEmptyResultIsNotCommitted) {
  TempDir dir;
  const std::string path = dir.file("plot.svg");
  put(path, "old plot");
  std::string message;
  {
    AtomicOutput out(path, "--out");  // the writer produced nothing
    message = error_of([&] { out.commit(); });
  }
  EXPECT_NE(message.find("missing or empty"), std::string::npos) << message;
  EXPECT_EQ(slurp(path), "old plot");
  EXPECT_EQ(dir.names(), std::vector<std::string>{"plot.svg"});
}

}  // namespace
}  // namespace kvbench
