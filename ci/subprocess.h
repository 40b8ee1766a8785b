// Child processes for the gate: the callgrind worker runs, `valgrind --version`.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kvbench::gate {

struct Command {
  std::vector<std::string> argv;                            // argv[0] is looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;     // set in the child's environment
  std::string log_path;  // the child's stdout and stderr go here ("": /dev/null)
};

// Runs every command, at most `jobs` (>= 1) at a time, and waits for all of them.
// RETURNS: one status per command: its exit code, 128 + the signal that ended it, or 127
// when it could not be started (the reason is in its log).
std::vector<int> run_commands(const std::vector<Command>& commands, int jobs);

struct Captured {
  int status = 0;      // as run_commands
  std::string output;  // stdout and stderr together
};

// Runs `argv` and collects its output.
Captured capture(const std::vector<std::string>& argv);

// RETURNS: the last `lines` lines of the file at `path` ("" when unreadable), for messages.
std::string tail_of_file(const std::string& path, int lines);

}  // namespace kvbench::gate
