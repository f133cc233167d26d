// The sluice command line: [EAL args] -- --config FILE [options].
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::dataplane {

enum class Action {
    Run,              // start EAL and capture
    CheckConfig,      // --check-config FILE: validate, no hardware
    PrintConfig,      // --print-config FILE: effective config
    ConfigReference,  // --config-reference: key reference (Markdown)
    Help,
    Version,
};

struct Options {
    Action action = Action::Run;
    std::vector<std::string> eal_args;  // passed to rte_eal_init untouched
    std::string config_path;
    std::vector<std::string> overrides;  // --set key=value, --stats-interval
    double duration_s = 0;               // 0 = until a signal
    uint64_t packets = 0;                // stop after this many received packets; 0 = no limit
    double idle_timeout_s = 0;           // stop after this long without packets (once any came)
};

struct CliResult {
    std::optional<Options> options;
    std::string error;  // set when options is empty
};

CliResult parse_cli(int argc, char** argv);

// The text of `sluice --help`.
std::string usage_text();

}  // namespace sluice::dataplane
