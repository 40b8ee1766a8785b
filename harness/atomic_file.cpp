#include "harness/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "harness/error.h"

namespace kvbench {

namespace {

std::string prefix(const std::string& arg) { return arg.empty() ? "" : arg + ": "; }

std::string dir_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

[[noreturn]] void cannot_write(const std::string& path, const std::string& arg,
                               const std::string& why) {
  fail(prefix(arg), "cannot write '", path, "': ", why);
}

// RETURNS: the file to write for `path`: the path itself, or the file a symbolic link at
// `path` points to (a rename must replace the file, not the link). Throws Error when
// `path` names something a rename must not replace (a directory, a device, a pipe).
std::string target_of(const std::string& path, const std::string& arg) {
  if (path.empty()) fail(prefix(arg), "an output file name is required, got ''");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return path;  // a new file
  if (S_ISLNK(st.st_mode)) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) {
      cannot_write(path, arg, std::string("it is a symbolic link that cannot be followed (") +
                                  std::strerror(errno) + ")");
    }
    if (::stat(resolved, &st) != 0) return resolved;
    if (S_ISDIR(st.st_mode)) cannot_write(path, arg, "it is a directory");
    return resolved;
  }
  if (S_ISDIR(st.st_mode)) cannot_write(path, arg, "it is a directory");
  if (!S_ISREG(st.st_mode)) {
    cannot_write(path, arg, "it is not a regular file (kvbench replaces its outputs whole)");
  }
  return path;
}

void check_directory(const std::string& path, const std::string& arg) {
  const std::string dir = dir_of(path);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    cannot_write(path, arg, errno == ENOENT ? "directory '" + dir + "' does not exist"
                                            : "directory '" + dir + "': " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) cannot_write(path, arg, "'" + dir + "' is not a directory");
}

// Opens DIR/.NAME.tmp.PID for writing, truncated. RETURNS: the descriptor.
int open_temp(const std::string& temp, const std::string& path, const std::string& arg) {
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    cannot_write(path, arg, "cannot create a file in '" + dir_of(temp) + "': " +
                                std::strerror(errno));
  }
  return fd;
}

// Writes all of `text` to `fd` and flushes it to disk. RETURNS: 0, or the errno of the failure.
int write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    done += static_cast<std::size_t>(n);
  }
  return ::fsync(fd) == 0 ? 0 : errno;
}

}  // namespace

std::string temp_path_for(const std::string& path) {
  const std::string dir = dir_of(path);
  return (dir == "/" ? "" : dir) + "/." + name_of(path) + ".tmp." + std::to_string(::getpid());
}

void check_writable(const std::string& path, const std::string& arg) {
  const std::string target = target_of(path, arg);
  check_directory(target, arg);
  const std::string probe = temp_path_for(target);
  ::close(open_temp(probe, path, arg));
  ::unlink(probe.c_str());
}

void prepare_output_directory(const std::string& dir, const std::string& arg) {
  require(!dir.empty(), prefix(arg), "an output directory is required, got ''");
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    require(S_ISDIR(st.st_mode), prefix(arg), "cannot use '", dir,
            "' as the output directory: it exists and is not a directory");
  } else {
    // Parents first, as mkdir -p; an error names the level that failed.
    std::string partial;
    std::size_t at = 0;
    while (at != std::string::npos) {
      at = dir.find('/', at + 1);
      partial = dir.substr(0, at);
      if (partial.empty() || ::mkdir(partial.c_str(), 0777) == 0 || errno == EEXIST) continue;
      fail(prefix(arg), "cannot create the output directory '", dir, "': ", partial, ": ",
           std::strerror(errno));
    }
    require(::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), prefix(arg),
            "cannot create the output directory '", dir, "'");
  }
  check_writable(dir + "/.kvbench-probe", arg);
}

void write_file_atomically(const std::string& path, const std::string& text,
                           const std::string& arg) {
  const std::string target = target_of(path, arg);
  check_directory(target, arg);
  const std::string temp = temp_path_for(target);
  const int fd = open_temp(temp, path, arg);
  const int write_error = write_all(fd, text);
  const int close_error = ::close(fd) == 0 ? 0 : errno;
  if (write_error != 0 || close_error != 0) {
    ::unlink(temp.c_str());
    cannot_write(path, arg, std::strerror(write_error != 0 ? write_error : close_error));
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int e = errno;
    ::unlink(temp.c_str());
    cannot_write(path, arg, std::string("renaming the finished temporary file failed: ") +
                                std::strerror(e));
  }
}

AtomicOutput::AtomicOutput(std::string path, std::string arg)
    : path_(std::move(path)), arg_(std::move(arg)) {
  const std::string target = target_of(path_, arg_);
  check_directory(target, arg_);
  temp_ = temp_path_for(target);
  ::close(open_temp(temp_, path_, arg_));  // proves the directory writable; the writer truncates
  path_ = target;
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicOutput::commit() {
  struct stat st {};
  if (::stat(temp_.c_str(), &st) != 0 || st.st_size == 0) {
    cannot_write(path_, arg_, "the program writing it left '" + temp_ + "' missing or empty");
  }
  const int fd = ::open(temp_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);  // its contents reach the disk before the rename makes them the file's
    ::close(fd);
  }
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    cannot_write(path_, arg_, std::string("renaming the finished temporary file failed: ") +
                                  std::strerror(errno));
  }
  committed_ = true;
}

}  // namespace kvbench
