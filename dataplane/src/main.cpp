// sluice: kernel-bypass packet capture and relay.
#include <cstdio>

#include "sluice/config/config.hpp"
#include "sluice/dataplane/app.hpp"
#include "sluice/dataplane/cli.hpp"
#include "sluice/dataplane/eal.hpp"

using namespace sluice;
using namespace sluice::dataplane;

namespace {

int check_config(const Options& o, bool print) {
    auto r = config::load_file(o.config_path, o.overrides);
    for (const auto& d : r.diagnostics) std::fprintf(stderr, "%s\n", d.str().c_str());
    if (!r.ok()) {
        std::fprintf(stderr, "%s: %zu error(s)\n", o.config_path.c_str(), r.error_count());
        return kExitUsage;
    }
    if (print) {
        std::fputs(config::to_toml(r.config).c_str(), stdout);
    } else {
        std::printf("%s: valid\n", o.config_path.c_str());
    }
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    const CliResult cli = parse_cli(argc, argv);
    if (!cli.options) {
        std::fprintf(stderr, "sluice: error: %s\n", cli.error.c_str());
        return kExitUsage;
    }
    const Options& o = *cli.options;
    switch (o.action) {
        case Action::Help:
            std::fputs(usage_text().c_str(), stdout);
            return kExitOk;
        case Action::Version:
            std::printf("sluice %s\n", SLUICE_VERSION);
            return kExitOk;
        case Action::ConfigReference:
            std::fputs(config::schema_markdown().c_str(), stdout);
            return kExitOk;
        case Action::CheckConfig:
            return check_config(o, false);
        case Action::PrintConfig:
            return check_config(o, true);
        case Action::Run:
            break;
    }
    return run_sluice(o);
}
