// The fuzz target's session: which implementations it picks from, how a finding is
// reported. Shared by the libFuzzer binary (kvbench_libfuzzer, libFuzzer's main) and the
// standalone replayer (kvbench_fuzz_replay, built by every compiler), so that a crash file
// replays the same way in both.
//
// Environment:
//   KVBENCH_FUZZ_IMPLS      implementations to pick from (Registry::select: "all" = every
//                           available non-planted one, the default; planted ones by name)
//   KVBENCH_FUZZ_PLUGINS    shared libraries to load first (comma-separated; as --plugin)
//   KVBENCH_FUZZ_SHRINK     0: report a finding without shrinking it (default 1)
//   KVBENCH_FUZZ_ARTIFACTS  directory for the shrunk input of a finding (default: .)
//   KVBENCH_FUZZ_VERBOSE    1: print every input's operation list, passing or not
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kvbench::fuzz {

// Reads the environment and adds to Registry::global() the planted caches (when the build
// has them) and KVBENCH_FUZZ_PLUGINS. REQUIRES: the built-ins are registered (the
// executable's main does it: LLVMFuzzerInitialize, standalone_main.cpp). Idempotent.
// Throws Error naming the variable and its value when it is wrong.
void init_session();

// Runs one input. On a failed check prints, on stderr, the decoded operation list, the
// failing check and a shrunk case (also written as an input file), and RETURNS true.
// REQUIRES: init_session() ran.
bool check_input(const std::uint8_t* data, std::size_t size);

}  // namespace kvbench::fuzz
