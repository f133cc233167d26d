// EAL bring-up with operator-readable failures.
//
// rte_eal_init reports why it failed only in its log. We tee that log into a
// buffer while it runs and, when it fails, translate the known causes into a
// message that names the fix.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sluice::dataplane {

// Exit codes, listed in `sluice --help`.
enum ExitCode : int {
    kExitOk = 0,
    kExitRuntime = 1,      // failed while running (port start, egress fatal, ...)
    kExitUsage = 2,        // bad command line or config file
    kExitEnvironment = 3,  // EAL could not start: huge pages, file prefix, permissions
    kExitDevice = 4,       // a configured port is missing or cannot be set up
};

struct EalFailure {
    std::string message;  // what went wrong and the command that fixes it
    int exit_code = kExitEnvironment;
};

// What the system says about 2 MB huge pages, for when EAL's log does not
// (a low --log-level hides its INFO lines).
struct HugepageFacts {
    bool known = false;
    bool hugetlbfs_mounted = false;
    long free_2m = 0;
    bool root = true;
};
HugepageFacts read_hugepage_facts();

// Turns EAL's log text and rte_errno into an explanation. Pure, so tests can
// drive it with recorded logs as well as real runs.
EalFailure explain_eal_failure(std::string_view eal_log, int rte_errno_value,
                               const HugepageFacts& facts = {});

// The --file-prefix in effect for these EAL arguments ("rte" by default).
std::string file_prefix_of(std::span<const std::string> eal_args);

// Runs rte_eal_init on the arguments (argv[0] is added). EAL's log goes to
// stderr as usual; on failure the explanation is returned.
std::optional<EalFailure> init_eal(std::span<const std::string> eal_args);

}  // namespace sluice::dataplane
