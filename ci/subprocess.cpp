#include "ci/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>

#include "harness/error.h"

extern char** environ;

namespace kvbench::gate {
namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

// posix_spawnp, not fork: the gate process may have threads (LibTorch's pools), and only
// async-signal-safe calls are allowed between fork and exec in a threaded process.
class Spawn {
 public:
  explicit Spawn(const Command& command) : command_(command) {
    require(!command.argv.empty(), "run_commands: a command has no argv");
    for (const std::string& a : command.argv) args_.push_back(const_cast<char*>(a.c_str()));
    args_.push_back(nullptr);
    // The environment: ours, with the command's variables replacing any of the same name.
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      const std::string name = entry.substr(0, entry.find('='));
      bool replaced = false;
      for (const auto& var : command.env) replaced = replaced || var.first == name;
      if (!replaced) env_strings_.push_back(entry);
    }
    for (const auto& var : command.env) env_strings_.push_back(var.first + "=" + var.second);
    for (std::string& s : env_strings_) env_.push_back(&s[0]);
    env_.push_back(nullptr);
    posix_spawn_file_actions_init(&actions_);
  }
  ~Spawn() { posix_spawn_file_actions_destroy(&actions_); }
  Spawn(const Spawn&) = delete;
  Spawn& operator=(const Spawn&) = delete;

  posix_spawn_file_actions_t* actions() { return &actions_; }

  pid_t start() {
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, args_[0], &actions_, nullptr, args_.data(), env_.data());
    require(rc == 0, "cannot start '", command_.argv[0], "': ", std::strerror(rc));
    return pid;
  }

 private:
  const Command& command_;
  std::vector<char*> args_;
  std::vector<std::string> env_strings_;
  std::vector<char*> env_;
  posix_spawn_file_actions_t actions_;
};

pid_t start(const Command& command) {
  Spawn spawn(command);
  const std::string log = command.log_path.empty() ? "/dev/null" : command.log_path;
  posix_spawn_file_actions_addopen(spawn.actions(), STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(spawn.actions(), STDOUT_FILENO, STDERR_FILENO);
  return spawn.start();
}

int wait_for(pid_t pid) {
  int raw = 0;
  for (;;) {
    const pid_t got = waitpid(pid, &raw, 0);
    if (got == pid) return decode_status(raw);
    require(got >= 0 || errno == EINTR, "waitpid failed: ", std::strerror(errno));
  }
}

}  // namespace

std::vector<int> run_commands(const std::vector<Command>& commands, int jobs) {
  require(jobs >= 1, "run_commands: jobs must be >= 1, got ", jobs);
  std::vector<int> status(commands.size(), 255);
  std::map<pid_t, std::size_t> running;
  std::size_t next = 0;
  while (next < commands.size() || !running.empty()) {
    while (next < commands.size() && static_cast<int>(running.size()) < jobs) {
      running[start(commands[next])] = next;
      ++next;
    }
    // Wait for whichever of ours ends first.
    int raw = 0;
    pid_t pid = -1;
    for (;;) {
      pid = waitpid(-1, &raw, 0);
      if (pid >= 0 || errno != EINTR) break;
    }
    require(pid >= 0, "waitpid failed: ", std::strerror(errno));
    auto it = running.find(pid);
    if (it == running.end()) continue;  // a child that is not one of these commands
    status[it->second] = decode_status(raw);
    running.erase(it);
  }
  return status;
}

Captured capture(const std::vector<std::string>& argv) {
  Command command;
  command.argv = argv;
  int fds[2];
  require(pipe2(fds, O_CLOEXEC) == 0, "cannot create a pipe: ", std::strerror(errno));
  Spawn spawn(command);
  posix_spawn_file_actions_adddup2(spawn.actions(), fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(spawn.actions(), fds[1], STDERR_FILENO);
  pid_t pid = -1;
  try {
    pid = spawn.start();
  } catch (...) {
    close(fds[0]);
    close(fds[1]);
    throw;
  }
  close(fds[1]);
  Captured result;
  char buffer[4096];
  for (;;) {
    const ssize_t got = read(fds[0], buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    result.output.append(buffer, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  result.status = wait_for(pid);
  return result;
}

std::string tail_of_file(const std::string& path, int lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (static_cast<int>(last.size()) > lines) last.pop_front();
  }
  std::ostringstream out;
  for (const std::string& l : last) out << "  | " << l << "\n";
  return out.str();
}

}  // namespace kvbench::gate
