#include "sluice/dataplane/cli.hpp"

#include <charconv>
#include <string_view>

namespace sluice::dataplane {
namespace {

bool parse_number(std::string_view s, double& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out >= 0;
}

bool parse_number(std::string_view s, uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string usage_text() {
    return R"(usage: sluice [EAL args] -- --config FILE [options]
       sluice --check-config FILE     validate a config file without touching hardware
       sluice --print-config FILE     print the effective config (defaults filled in)
       sluice --config-reference      print the key reference (Markdown)
       sluice --counter-reference     print every counter and what it means (Markdown)
       sluice --help | --version

sluice takes every packet from DPDK ports, filters, batches, compresses and
checksums it, and sends it to sluice-collector over TCP or RDMA.

EAL arguments (before --) pass to DPDK untouched, e.g.
  -l 0-3            lcores: the first is the main (control) lcore, the others run stages
  -a 0000:3b:00.0   the NIC to use (bound to vfio-pci; see docs/operations.md)
  --in-memory       no files in hugetlbfs: several instances can run at once
  --file-prefix P   a distinct name per instance when not --in-memory
  --no-huge -m 512  plain memory, for tests on machines without huge pages

Options (after --):
  --config FILE           the configuration (example: config/sluice.toml)
  --set KEY=VALUE         override a config key, e.g. --set codec.type=zstd (repeatable)
  --stats-interval S      seconds between stats lines (stats.interval_s)
  --duration S            stop after S seconds
  --packets N             stop once N packets have been received
  --idle-timeout S        stop after S seconds without packets (once any arrived);
                          time in which backpressure holds rx back does not count

Stops cleanly on SIGINT or SIGTERM: drains, flushes, prints a summary.

Exit codes:
  0  success
  1  failure while running (port start, egress)
  2  bad command line or configuration
  3  EAL could not start (huge pages, file prefix in use, permissions)
  4  a configured port is missing or cannot be set up
)";
}

CliResult parse_cli(int argc, char** argv) {
    Options o;
    std::vector<std::string> args(argv + 1, argv + argc);
    auto fail = [](std::string why) { return CliResult{std::nullopt, std::move(why)}; };

    // Stand-alone actions take no EAL arguments.
    if (!args.empty()) {
        const std::string& a = args[0];
        auto only = [](Action act) {
            Options just;
            just.action = act;
            return CliResult{just, {}};
        };
        if (a == "--help" || a == "-h") return only(Action::Help);
        if (a == "--version") return only(Action::Version);
        if (a == "--config-reference") return only(Action::ConfigReference);
        if (a == "--counter-reference") return only(Action::CounterReference);
        if (a == "--check-config" || a == "--print-config") {
            o.action = a == "--check-config" ? Action::CheckConfig : Action::PrintConfig;
            if (args.size() < 2) return fail(a + " needs a file: " + a + " sluice.toml");
            o.config_path = args[1];
            for (std::size_t i = 2; i < args.size(); ++i) {
                if (args[i] == "--set" && i + 1 < args.size()) {
                    o.overrides.push_back(args[++i]);
                } else {
                    return fail("unexpected argument '" + args[i] + "' after " + a + " FILE");
                }
            }
            return {o, {}};
        }
    }

    std::size_t i = 0;
    for (; i < args.size() && args[i] != "--"; ++i)
        o.eal_args.push_back(args[i]);
    if (i == args.size()) {
        return fail(
            "missing '--' between EAL arguments and sluice's options: sluice -l 0,1 -- --config "
            "sluice.toml");
    }
    for (++i; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto next = [&](std::string& out) {
            if (i + 1 >= args.size()) return false;
            out = args[++i];
            return true;
        };
        std::string v;
        if (a == "--config") {
            if (!next(o.config_path)) return fail("--config needs a file");
        } else if (a == "--set") {
            if (!next(v) || v.find('=') == std::string::npos) {
                return fail("--set needs KEY=VALUE, e.g. --set codec.type=zstd");
            }
            o.overrides.push_back(v);
        } else if (a == "--stats-interval") {
            double s = 0;
            if (!next(v) || !parse_number(v, s)) return fail("--stats-interval needs seconds");
            o.overrides.push_back("stats.interval_s=" + std::to_string(static_cast<long>(s)));
        } else if (a == "--duration") {
            if (!next(v) || !parse_number(v, o.duration_s)) return fail("--duration needs seconds");
        } else if (a == "--packets") {
            if (!next(v) || !parse_number(v, o.packets)) return fail("--packets needs a count");
        } else if (a == "--idle-timeout") {
            if (!next(v) || !parse_number(v, o.idle_timeout_s)) {
                return fail("--idle-timeout needs seconds");
            }
        } else if (a == "--help" || a == "-h") {
            o.action = Action::Help;
            return {o, {}};
        } else {
            return fail("unknown option '" + a + "' (sluice --help lists them)");
        }
    }
    if (o.config_path.empty()) return fail("missing --config FILE (example: config/sluice.toml)");
    return {o, {}};
}

}  // namespace sluice::dataplane
