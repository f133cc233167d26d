// Helpers for the guest tests (tests/rdma/guest_*): the testbed check, key
// files, and sluice-collector --listen rdma:// as a child process that a
// test may kill outright.
#pragma once

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../collector/collector_testing.hpp"
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sluice::rdma {
namespace {

using namespace collector::testing;

inline bool in_testbed() {
    const char* v = std::getenv("SLUICE_RDMA_TESTBED");
    return v != nullptr && std::string(v) == "1";
}
inline std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : fallback;
}
#define REQUIRE_TESTBED()                                                                  \
    do {                                                                                   \
        if (!in_testbed()) {                                                               \
            GTEST_SKIP() << "needs the RDMA testbed guest: run scripts/rdma-testbed test"; \
        }                                                                                  \
    } while (0)

const std::string kKey = "0123456789abcdef0123456789abcdef";

inline std::string write_key(const TempDir& d, const std::string& key = kKey) {
    const std::string p = d.str() + "/key";
    std::ofstream(p) << key << "\n";
    ::chmod(p.c_str(), 0600);
    return p;
}

inline std::string slurp(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// sluice-collector as a child process, so that it can be killed outright.
class CollectorProcess {
  public:
    CollectorProcess(const TempDir& d, uint16_t port, std::vector<std::string> extra = {})
        : dir_(d.str()), port_(port), extra_(std::move(extra)) {
        start();
    }
    ~CollectorProcess() { stop(SIGKILL); }
    void start() {
        const std::string bin =
            env_or("SLUICE_BUILD_ROOT", "build") + "/collector/sluice-collector";
        std::vector<std::string> args = {
            bin,
            "--listen",
            fmt::format("rdma://{}:{}", env_or("RXE0_IP", "10.10.0.1"), port_),
            "--out",
            dir_ + "/out",
            "--key-file",
            dir_ + "/key",
            "--stats-interval",
            "0",
            "--summary-json",
            dir_ + "/summary.json"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        log_ = dir_ + fmt::format("/collector.{}.log", runs_++);
        pid_ = ::fork();
        if (pid_ == 0) {
            const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            std::vector<char*> argv;
            for (auto& a : args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        // Listening once the log says so.
        for (int i = 0; i < 1000; ++i) {
            if (slurp(log_).find("listening on") != std::string::npos) return;
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                FAIL() << "sluice-collector exited: " << slurp(log_);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL() << "sluice-collector did not start listening: " << slurp(log_);
    }
    int stop(int sig = SIGTERM) {
        if (pid_ <= 0) return -1;
        ::kill(pid_, sig);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return st;
    }
    std::string log() const { return slurp(log_); }
    std::string summary() const { return slurp(dir_ + "/summary.json"); }
    pid_t pid() const { return pid_; }

  private:
    std::string dir_;
    uint16_t port_;
    std::vector<std::string> extra_;
    std::string log_;
    pid_t pid_ = -1;
    int runs_ = 0;
};

inline uint64_t json_number(const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\": ");
    if (at == std::string::npos) return UINT64_MAX;
    return std::stoull(json.substr(at + key.size() + 4));
}

inline void expect_exact(const TempDir& d, uint64_t stream, const std::vector<Packet>& pk) {
    const std::vector<Packet> got = read_stream(d.path() / "out", stream);
    ASSERT_EQ(got.size(), pk.size());
    for (std::size_t i = 0; i < pk.size(); ++i) {
        ASSERT_EQ(got[i].data, pk[i].data) << "packet " << i;
        ASSERT_EQ(got[i].ts_ns, pk[i].ts_ns) << "packet " << i;
        ASSERT_EQ(got[i].orig_len, pk[i].orig_len) << "packet " << i;
    }
}

// Runs a program to completion with its output in `log`; returns its exit
// status (-signal when killed).
inline int run_program(const std::vector<std::string>& args, const std::string& log) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

}  // namespace
}  // namespace sluice::rdma
