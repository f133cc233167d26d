#include "sluice/collector/on_rotate.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"

extern char** environ;

namespace sluice::collector {
namespace {

using report::log_warning;

std::string status_text(int status) {
    if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                           ::strsignal(WTERMSIG(status)));
    return "ended";
}

}  // namespace

std::optional<std::vector<std::string>> RotateCommand::parse(std::string_view cmd,
                                                             std::string* error) {
    std::vector<std::string> words;
    std::size_t at = 0;
    while (at < cmd.size()) {
        while (at < cmd.size() && (cmd[at] == ' ' || cmd[at] == '\t'))
            ++at;
        std::size_t end = at;
        while (end < cmd.size() && cmd[end] != ' ' && cmd[end] != '\t')
            ++end;
        if (end > at) words.emplace_back(cmd.substr(at, end - at));
        at = end;
    }
    if (words.empty()) {
        *error =
            "--on-rotate needs a program (and its first arguments), e.g. --on-rotate "
            "/usr/local/bin/ship-capture";
        return std::nullopt;
    }
    return words;
}

RotateCommand::RotateCommand(std::vector<std::string> argv, uint32_t max_running,
                             FileCounters& counters)
    : argv_(std::move(argv)), max_running_(max_running ? max_running : 1), k_(counters) {}

RotateCommand::~RotateCommand() = default;

void RotateCommand::add(uint64_t stream, std::string path) {
    if (queue_.size() >= kMaxQueued) {
        k_.on_rotate_dropped.inc();
        log_warning(
            "--on-rotate: {} commands wait already; not run for {} (the commands are slower than "
            "files finish: raise --on-rotate-jobs, or make the command faster)",
            queue_.size(), path);
        return;
    }
    queue_.push_back({stream, std::move(path)});
    poll();
}

void RotateCommand::start(Job job) {
    std::vector<std::string> env_store = {"SLUICE_FILE=" + job.path,
                                          fmt::format("SLUICE_STREAM={}", job.stream)};
    std::vector<char*> envp;
    for (char** e = environ; e && *e; ++e) {
        const std::string_view v = *e;
        if (v.starts_with("SLUICE_FILE=") || v.starts_with("SLUICE_STREAM=")) continue;
        envp.push_back(*e);
    }
    for (std::string& v : env_store)
        envp.push_back(v.data());
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (std::string& a : argv_)
        argv.push_back(a.data());
    argv.push_back(job.path.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    // No input; nothing of the collector's (sockets, files) but its output.
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    // Default signal handling (the collector ignores SIGPIPE), nothing
    // blocked, and a process group of its own: a Ctrl-C meant for the
    // collector does not cut a command short.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        k_.on_rotate_failed.inc();
        log_warning("--on-rotate: cannot run {} for {}: {}; check the program's path and mode",
                    argv_[0], job.path, std::strerror(rc));
        return;
    }
    k_.on_rotate_started.inc();
    children_.push_back({pid, std::move(job)});
}

void RotateCommand::reap() {
    for (std::size_t i = 0; i < children_.size();) {
        int status = 0;
        const pid_t r = ::waitpid(children_[i].pid, &status, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR)) {
            ++i;
            continue;
        }
        if (r < 0) {
            // Not our child any more (reaped elsewhere): nothing to learn.
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            k_.on_rotate_failed.inc();
            log_warning("--on-rotate: {} {} for {}", argv_[0], status_text(status),
                        children_[i].job.path);
        }
        children_[i] = std::move(children_.back());
        children_.pop_back();
    }
}

void RotateCommand::poll() {
    if (!children_.empty()) reap();
    while (!queue_.empty() && children_.size() < max_running_) {
        Job j = std::move(queue_.front());
        queue_.pop_front();
        start(std::move(j));
    }
}

void RotateCommand::drain(uint32_t timeout_ms) {
    const uint64_t deadline = session::monotonic_ns() + uint64_t{timeout_ms} * 1'000'000u;
    poll();
    while ((!children_.empty() || !queue_.empty()) && session::monotonic_ns() < deadline) {
        const timespec pause{0, 10'000'000};  // 10 ms: a stop is not a hot path
        ::nanosleep(&pause, nullptr);
        poll();
    }
    for (const Job& j : queue_) {
        k_.on_rotate_dropped.inc();
        log_warning("--on-rotate: not run for {}: the collector stopped first; run it by hand",
                    j.path);
    }
    queue_.clear();
    for (const Child& c : children_)
        log_warning(
            "--on-rotate: {} for {} (pid {}) still runs; the collector does not wait "
            "for it",
            argv_[0], c.job.path, c.pid);
}

}  // namespace sluice::collector
