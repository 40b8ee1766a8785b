// The `kvbench` subcommands. Each add_*_command registers one subcommand on the app; its
// callback throws kvbench::Error for bad usage (exit 2) or CommandExit for a chosen code.
#pragma once

#include <CLI/CLI.hpp>

namespace kvbench::cli {

// Thrown by a command to end the program with `code` after it printed its own result
// (verify: 1 when a property failed; gate: 1 on a regression).
struct CommandExit {
  int code;
};

void add_list_command(CLI::App& app);     // harness/cli/cmd_list.cpp
void add_memory_command(CLI::App& app);   // harness/cli/cmd_memory.cpp
void add_verify_command(CLI::App& app);   // properties/cmd_verify.cpp (verify and fuzz)
void add_bench_command(CLI::App& app);    // harness/bench/cmd_bench.cpp
void add_report_command(CLI::App& app);   // reports/cmd_report.cpp
void add_gate_command(CLI::App& app);     // ci/cmd_gate.cpp

}  // namespace kvbench::cli
