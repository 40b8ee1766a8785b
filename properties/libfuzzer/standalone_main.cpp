// kvbench_fuzz_replay: the fuzz target without libFuzzer (any compiler). Runs input files
// (or every file of a directory) through the same checks as kvbench_libfuzzer, printing a
// finding with its shrunk case, and writes the seed corpus. ctest replays the committed
// corpus with it, so the gcc build checks the target's code too.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "harness/error.h"
#include "harness/registry.h"
#include "impls/impls.h"
#include "properties/libfuzzer/fuzz_case.h"
#include "properties/libfuzzer/fuzz_target.h"

namespace {

const char* const kUsage =
    "usage: kvbench_fuzz_replay FILE|DIR...      run inputs (exit 1 on a finding)\n"
    "       kvbench_fuzz_replay --write-seeds DIR  write the seed corpus into DIR\n"
    "Environment: KVBENCH_FUZZ_IMPLS, KVBENCH_FUZZ_PLUGINS, KVBENCH_FUZZ_SHRINK,\n"
    "KVBENCH_FUZZ_ARTIFACTS, KVBENCH_FUZZ_VERBOSE (properties/libfuzzer/fuzz_target.h).\n";

bool is_dir(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> files_of(const std::string& path) {
  if (!is_dir(path)) return {path};
  std::vector<std::string> out;
  DIR* dir = opendir(path.c_str());
  kvbench::require(dir != nullptr, "cannot open directory '", path, "'");
  while (const dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    if (!is_dir(path + "/" + name)) out.push_back(path + "/" + name);
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  kvbench::require(static_cast<bool>(in), "cannot read input file '", path, "'");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int write_seeds(const std::string& dir) {
  for (const kvbench::fuzz::Seed& s : kvbench::fuzz::seed_inputs()) {
    const std::vector<std::uint8_t> bytes = kvbench::fuzz::encode(s.input);
    const std::string path = dir + "/" + s.name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    kvbench::require(static_cast<bool>(out), "cannot write seed file '", path, "'");
    std::cout << path << " (" << bytes.size() << " bytes)\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
      std::cerr << kUsage;
      return argc < 2 ? 2 : 0;
    }
    if (std::strcmp(argv[1], "--write-seeds") == 0) {
      kvbench::require(argc == 3, "--write-seeds takes one directory, got ", argc - 2,
                       " arguments");
      return write_seeds(argv[2]);
    }
    kvbench::register_builtin_impls(kvbench::Registry::global());  // this program's main
    kvbench::fuzz::init_session();
    int inputs = 0, findings = 0;
    for (int i = 1; i < argc; ++i) {
      kvbench::require(argv[i][0] != '-', "unknown option '", argv[i], "'\n", kUsage);
      for (const std::string& file : files_of(argv[i])) {
        const std::vector<std::uint8_t> bytes = read_file(file);
        ++inputs;
        if (kvbench::fuzz::check_input(bytes.data(), bytes.size())) {
          std::cerr << "in input file " << file << "\n";
          ++findings;
        }
      }
    }
    std::cout << inputs << " inputs, " << findings << " findings" << std::endl;
    return findings > 0 ? 1 : 0;
  } catch (const kvbench::Error& e) {
    std::cerr << "kvbench_fuzz_replay: error: " << e.what() << "\n";
    return 2;
  }
}
