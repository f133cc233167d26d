// sluice-collector's command line.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sluice/collector/collector.hpp"

namespace sluice::collector {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // could not start or keep running (address in use, ...)
inline constexpr int kExitUsage = 2;    // bad command line

struct CliResult {
    std::optional<CollectorOptions> options;  // set: run with these
    int exit_code = kExitOk;                  // otherwise: exit with this ...
    std::string message;                      // ... after printing this (stdout for help)
};

CliResult parse_command_line(const std::vector<std::string>& args);
std::string usage();

// "64M", "1G", "2T", "1500000" -> bytes; nullopt on anything else.
std::optional<uint64_t> parse_size(std::string_view s);
// "3600", "90s", "30m", "12h", "7d", "2w" -> seconds (> 0); nullopt on anything else.
std::optional<uint64_t> parse_duration(std::string_view s);

}  // namespace sluice::collector
