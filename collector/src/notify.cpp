#include "notify.hpp"

#include <ctime>

#include <systemd/sd-daemon.h>

namespace sluice::collector {
namespace {

uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

ServiceNotifier::ServiceNotifier() {
    uint64_t usec = 0;
    // > 0: the watchdog is on for this process ($WATCHDOG_PID, when set, names it).
    if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_interval_ns_ = usec * 1000;
}

void ServiceNotifier::ready(const std::string& status) {
    const std::string message = "READY=1\nSTATUS=" + status;
    ::sd_notify(0, message.c_str());
}

void ServiceNotifier::tick() {
    if (watchdog_interval_ns_ == 0) return;
    const uint64_t now = monotonic_ns();
    if (now < next_ping_ns_) return;
    ::sd_notify(0, "WATCHDOG=1");
    next_ping_ns_ = now + watchdog_interval_ns_ / 2;
}

void ServiceNotifier::stopping() {
    ::sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

}  // namespace sluice::collector
