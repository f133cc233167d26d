// The sluice program: from a parsed command line to an exit code.
#pragma once

#include <span>
#include <string>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/cli.hpp"

namespace sluice::dataplane {

// The config file plus what only the dataplane can check (the filter
// expression). Needs no EAL.
config::LoadResult load_and_check_config(const std::string& path,
                                         std::span<const std::string> overrides);

int run_sluice(const Options& options);

}  // namespace sluice::dataplane
