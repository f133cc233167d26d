// The service manager's notification protocol (sd_notify(3)) for
// sluice-collector run as a systemd Type=notify service: READY=1 once it
// listens, WATCHDOG=1 from the event loop, STOPPING=1 when it begins to shut
// down. Started any other way ($NOTIFY_SOCKET and $WATCHDOG_USEC unset) every
// call does nothing, and libsystemd is not even loaded.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::collector {

class ServiceNotifier {
  public:
    // Loads libsystemd when a service manager is there, and reads the
    // watchdog interval it passes ($WATCHDOG_USEC, WatchdogSec=).
    ServiceNotifier();

    void ready(const std::string& status);
    // Called every turn of the event loop's timers: sends WATCHDOG=1 every
    // half watchdog interval (nothing when the watchdog is off).
    void tick();
    void stopping();

  private:
    int (*notify_)(int, const char*) = nullptr;  // sd_notify; nullptr: nobody to tell
    uint64_t watchdog_interval_ns_ = 0;          // 0: no watchdog
    uint64_t next_ping_ns_ = 0;
};

}  // namespace sluice::collector
