// Output files written whole or not at all. Every file kvbench writes for a user (bench
// --out, the report's documents and plots, verify --json, gate --out / --update) goes to a
// temporary file beside its target, DIR/.NAME.tmp.PID, which is renamed over the target only
// once it is complete: an interrupted or failed run leaves the old file as it was, and the
// temporary file is removed on failure. Rename is atomic within a directory (POSIX), which
// is why the temporary file lives beside the target and not in /tmp.
//
// Errors are Error "ARG: cannot write 'PATH': why" (ARG: the option that named the file;
// "" leaves it out), so that `kvbench: error:` names the argument and its value.
#pragma once

#include <functional>
#include <string>

namespace kvbench {

// Checks, before any work, that `path` can be written: it is not a directory (nor another
// non-regular file, which a rename would replace), its directory exists and a file can be
// created there (a probe file is created and removed). Throws Error naming `arg`, the path
// and the reason otherwise.
void check_writable(const std::string& path, const std::string& arg);

// Creates `dir` (and its parents) when missing and checks that files can be created in it.
// Throws Error naming `arg` when it exists as something else or cannot be written.
void prepare_output_directory(const std::string& dir, const std::string& arg);

// Writes `text` to `path` atomically (see above): the temporary file is written, flushed to
// disk and renamed over `path`. Throws Error naming `arg` and the reason (for example "No
// space left on device") after removing the temporary file; `path` is then unchanged.
void write_file_atomically(const std::string& path, const std::string& text,
                           const std::string& arg = "");

// For a file another program writes by name (gnuplot's `set output`): the temporary path to
// give it, renamed over the target by commit(). Destroyed without commit (an error), it
// removes whatever was written to the temporary path.
class AtomicOutput {
 public:
  // Throws Error (as check_writable) when `path` cannot be written.
  AtomicOutput(std::string path, std::string arg = "");
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_; }
  const std::string& path() const { return path_; }
  // REQUIRES: the temporary file has been written completely. Renames it over the target;
  // throws Error (and removes it) when it is missing, empty or cannot be renamed.
  void commit();

 private:
  std::string path_, arg_, temp_;
  bool committed_ = false;
};

// RETURNS: DIR/.NAME.tmp.PID for `path` = DIR/NAME (the temporary file name used above).
std::string temp_path_for(const std::string& path);

}  // namespace kvbench
