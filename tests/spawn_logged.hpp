#pragma once
// Crash tests start an example program as a child process and kill it: spawn_logged starts it in
// a directory with its output appended to a log file there, exit_code reports how it ended.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace traincb_test {

/// Starts `exe` with `args` in `dir`; its stdout and stderr are appended to dir/log.txt. Returns
/// the child's pid (-1 when fork failed). A child that cannot start exits with 120 to 122.
inline pid_t spawn_logged(const std::filesystem::path& dir, std::string exe, std::vector<std::string> args) {
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    if (::chdir(dir.c_str()) != 0) ::_exit(120);
    const int fd = ::open("log.txt", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ::_exit(121);
    std::vector<char*> argv{exe.data()};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(122);
}

/// A wait status as an exit code: the program's own, or 128 + the signal that ended it.
[[nodiscard]] inline int exit_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace traincb_test
