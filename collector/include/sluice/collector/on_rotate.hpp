// --on-rotate CMD: a command run with each finished capture file, like
// tcpdump -z, that never holds up capture. CMD's words (split at spaces; no
// shell, no quoting) are the program, looked up in PATH, and its first
// arguments; the file's absolute path is the last argument, and
// SLUICE_FILE and SLUICE_STREAM are in its environment. A file name reaches
// the program as one argument whatever it holds: it is never parsed by a
// shell.
//
// The event loop starts commands with posix_spawn (a vfork and an exec: no
// copy of the collector's memory), at most `max_running` at once; the rest
// wait in a bounded queue. poll() reaps without blocking; failures (no such
// program, an exit status other than 0, a signal) are logged with the file
// and counted. At stop, drain() lets what waits run and waits a bounded time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "sluice/collector/files.hpp"

namespace sluice::collector {

class RotateCommand {
  public:
    static constexpr std::size_t kMaxQueued = 4096;

    // CMD's words; nullopt and `error` for one without any.
    static std::optional<std::vector<std::string>> parse(std::string_view cmd, std::string* error);

    RotateCommand(std::vector<std::string> argv, uint32_t max_running, FileCounters& counters);
    ~RotateCommand();  // commands still running go on; they are not waited for
    RotateCommand(const RotateCommand&) = delete;
    RotateCommand& operator=(const RotateCommand&) = delete;

    // A finished file (absolute path): its command starts now or later.
    void add(uint64_t stream, std::string path);
    // Reaps finished commands and starts waiting ones. Never blocks.
    void poll();
    // Starts what waits and waits for every command, at most `timeout_ms`;
    // then logs (and counts) what never started, and logs what still runs.
    void drain(uint32_t timeout_ms);

    std::size_t running() const { return children_.size(); }
    std::size_t waiting() const { return queue_.size(); }

  private:
    struct Job {
        uint64_t stream = 0;
        std::string path;
    };
    struct Child {
        pid_t pid = 0;
        Job job;
    };
    void start(Job job);
    void reap();

    std::vector<std::string> argv_;
    uint32_t max_running_;
    FileCounters& k_;
    std::deque<Job> queue_;
    std::vector<Child> children_;
};

}  // namespace sluice::collector
