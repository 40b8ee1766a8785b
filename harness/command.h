// What a `kvbench` subcommand may throw besides kvbench::Error (bad usage: exit 2). Each
// layer declares its own subcommand beside its code (harness/bench/cmd_bench.h,
// properties/cmd_verify.h, reports/cmd_report.h, ci/cmd_gate.h); the CLI (harness/cli)
// adds them to the app and turns these into exit codes.
#pragma once

namespace kvbench::cli {

// Thrown by a command to end the program with `code` after it printed its own result
// (verify: 1 when a property failed; gate: 1 on a regression).
struct CommandExit {
  int code;
};

}  // namespace kvbench::cli
