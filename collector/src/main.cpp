// sluice-collector: see docs/collector.md and --help.
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "notify.hpp"
#include <fmt/format.h>
#include <unistd.h>

#include "sluice/collector/cli.hpp"
#include "sluice/collector/collector.hpp"
#include "sluice/report/log.hpp"

namespace {

int g_stop_fd = -1;
int g_reload_fd = -1;

void on_signal(int sig) {
    const uint64_t one = 1;
    // write() is async-signal-safe; the event loop sees the eventfd.
    const ssize_t n = ::write(sig == SIGHUP ? g_reload_fd : g_stop_fd, &one, sizeof one);
    (void)n;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace sluice::collector;
    using sluice::report::log_error;
    sluice::report::set_program("sluice-collector");
    const std::vector<std::string> args(argv + 1, argv + argc);
    CliResult cli = parse_command_line(args);
    if (!cli.options) {
        std::fputs(cli.message.c_str(), cli.exit_code == kExitOk ? stdout : stderr);
        return cli.exit_code;
    }
    if (!cli.message.empty()) std::fputs(cli.message.c_str(), stderr);
    ::signal(SIGPIPE, SIG_IGN);
    try {
        Collector collector(*cli.options);
        g_stop_fd = collector.stop_fd();
        g_reload_fd = collector.reload_fd();
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        // SIGHUP: the key file and TLS files are read again (docs/collector.md).
        sigaction(SIGHUP, &sa, nullptr);
        // Under systemd (Type=notify, WatchdogSec=): ready once it listens,
        // which the constructor did; alive while the event loop turns.
        ServiceNotifier notifier;
        collector.set_hooks({[&] { notifier.tick(); }, [&] { notifier.stopping(); }});
        const CollectorOptions& o = *cli.options;
        notifier.ready(o.group.servers.empty()
                           ? fmt::format("listening on {}://{}:{}, writing to {}",
                                         sluice::session::to_string(o.listen.transport),
                                         o.listen.host, collector.port(), o.out_dir)
                           : fmt::format("member of collector group {}, writing to {}",
                                         o.group.group, o.out_dir));
        return collector.run();
    } catch (const std::invalid_argument& e) {
        log_error("{}", e.what());
        return kExitUsage;
    } catch (const std::exception& e) {
        log_error("{}", e.what());
        return kExitRuntime;
    }
}
