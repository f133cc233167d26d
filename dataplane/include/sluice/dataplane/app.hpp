// The sluice program: from a parsed command line to an exit code.
#pragma once

#include "sluice/dataplane/cli.hpp"

namespace sluice::dataplane {

int run_sluice(const Options& options);

}  // namespace sluice::dataplane
