#include "notify.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "sluice/report/shared_library.hpp"

namespace sluice::collector {
namespace {

uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

bool set(const char* name) {
    const char* v = std::getenv(name);
    return v && *v;
}

}  // namespace

// libsystemd is loaded only when a service manager asks for notifications:
// linked, it and the libraries it pulls in (libgcrypt, liblzma, libcap) would
// be loaded and relocated at every start (docs/performance.md, "Start-up and
// size").
ServiceNotifier::ServiceNotifier() {
    if (!set("NOTIFY_SOCKET") && !set("WATCHDOG_USEC")) return;
    int (*watchdog_enabled)(int, uint64_t*) = nullptr;
    const std::string failure =
        report::load_shared_library("libsystemd.so.0", "libsystemd0",
                                    {report::symbol(notify_, "sd_notify"),
                                     report::symbol(watchdog_enabled, "sd_watchdog_enabled")});
    if (!failure.empty()) {
        notify_ = nullptr;
        std::fprintf(stderr,
                     "sluice-collector: warning: started by a service manager ($NOTIFY_SOCKET "
                     "or $WATCHDOG_USEC set) but %s: it gets no READY=1 or WATCHDOG=1 and may "
                     "stop the collector\n",
                     failure.c_str());
        return;
    }
    uint64_t usec = 0;
    // > 0: the watchdog is on for this process ($WATCHDOG_PID, when set, names it).
    if (watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_interval_ns_ = usec * 1000;
}

void ServiceNotifier::ready(const std::string& status) {
    if (!notify_) return;
    const std::string message = "READY=1\nSTATUS=" + status;
    notify_(0, message.c_str());
}

void ServiceNotifier::tick() {
    if (watchdog_interval_ns_ == 0 || !notify_) return;
    const uint64_t now = monotonic_ns();
    if (now < next_ping_ns_) return;
    notify_(0, "WATCHDOG=1");
    next_ping_ns_ = now + watchdog_interval_ns_ / 2;
}

void ServiceNotifier::stopping() {
    if (notify_) notify_(0, "STOPPING=1\nSTATUS=stopping");
}

}  // namespace sluice::collector
