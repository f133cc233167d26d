#include "sluice/dataplane/eal.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>

namespace sluice::dataplane {
namespace {

bool has(std::string_view log, std::string_view what) {
    return log.find(what) != std::string_view::npos;
}

// EAL's log is teed: to the original stream (stderr) and into this buffer.
struct LogTee {
    std::string text;
};

ssize_t tee_write(void* cookie, const char* buf, size_t size) {
    auto* tee = static_cast<LogTee*>(cookie);
    tee->text.append(buf, size);
    return static_cast<ssize_t>(std::fwrite(buf, 1, size, stderr));
}

}  // namespace

std::string file_prefix_of(std::span<const std::string> args) {
    std::string prefix = "rte";
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--file-prefix" && i + 1 < args.size()) {
            prefix = args[i + 1];
        } else if (args[i].rfind("--file-prefix=", 0) == 0) {
            prefix = args[i].substr(14);
        }
    }
    return prefix;
}

HugepageFacts read_hugepage_facts() {
    HugepageFacts f;
    std::ifstream mounts("/proc/mounts");
    std::string line;
    while (std::getline(mounts, line)) {
        if (line.find(" hugetlbfs ") != std::string::npos) f.hugetlbfs_mounted = true;
    }
    std::ifstream free_pages("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
    if (free_pages >> f.free_2m) f.known = true;
    f.root = geteuid() == 0;
    return f;
}

EalFailure explain_eal_failure(std::string_view log, int err, const HugepageFacts& facts) {
    static const std::regex not_enough(R"(Requested: (\d+)MB, available: (\d+)MB)");
    static const std::regex lock(R"(Cannot create lock on '/[^']*/([^/']+)/config')");
    static const std::regex page_size(R"(No free (\d+) kB hugepages reported)");
    static const std::regex no_mount(
        R"((\d+) hugepages of size (\d+) reserved, but no mounted hugetlbfs)");
    std::cmatch m;
    const std::string text(log);

    if (has(log, "Is another primary process running")) {
        std::string prefix = "rte";
        if (std::regex_search(text.c_str(), m, lock)) prefix = m[1].str();
        return {
            fmt::format("another DPDK primary process already uses the file prefix '{}'. Give this "
                        "instance its own prefix with the EAL argument --file-prefix NAME (e.g. "
                        "--file-prefix sluice2), or run it with --in-memory; if no such process "
                        "runs, remove the stale /var/run/dpdk/{} directory",
                        prefix, prefix),
            kExitEnvironment};
    }
    if (has(log, "Not enough memory available")) {
        std::string detail;
        if (std::regex_search(text.c_str(), m, not_enough)) {
            const long want = std::stol(m[1].str()), have = std::stol(m[2].str());
            const long pages = (want + 1) / 2 + 64;  // 2 MB pages, with room for the rest of EAL
            detail = fmt::format(
                " (EAL was asked for {} MB and {} MB are free in huge pages): reserve more with "
                "`echo {} > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`, or ask for "
                "less with -m / --socket-mem",
                want, have, pages);
        } else {
            detail =
                ": reserve more with `echo 1024 > "
                "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages` or lower -m / "
                "--socket-mem";
        }
        return {"not enough huge-page memory" + detail, kExitEnvironment};
    }
    if (has(log, "reserved, but no mounted hugetlbfs")) {
        std::string size = "2048";
        if (std::regex_search(text.c_str(), m, no_mount)) {
            size = std::to_string(std::stoul(m[2].str()) / 1024);
        }
        return {fmt::format("huge pages are reserved but no hugetlbfs is mounted for {} kB pages: "
                            "mount one with `mkdir -p /dev/hugepages && mount -t hugetlbfs "
                            "{}nodev /dev/hugepages`, or add the EAL argument --in-memory",
                            size, size == "2048" ? "" : "-o pagesize=1G "),
                kExitEnvironment};
    }
    if (has(log, "Cannot get hugepage information") && !has(log, "No free") && facts.known &&
        !facts.hugetlbfs_mounted && facts.free_2m > 0) {
        return {
            "huge pages are reserved but no hugetlbfs is mounted: mount one with `mkdir -p "
            "/dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages`, or add the EAL "
            "argument --in-memory",
            kExitEnvironment};
    }
    if (has(log, "Cannot get hugepage information") || has(log, "No free") ||
        has(log, "No available hugepages")) {
        std::string size = "2048";
        if (std::regex_search(text.c_str(), m, page_size)) size = m[1].str();
        if (facts.known && !facts.root && !has(log, "No free") && facts.free_2m > 0) {
            return {
                "cannot read huge-page information (permission denied): run sluice as root, "
                "or give its user access to /dev/hugepages",
                kExitEnvironment};
        }
        return {
            fmt::format("no free huge pages: reserve them with `echo 1024 > "
                        "/sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages` (scripts/setup does "
                        "this), check `grep Huge /proc/meminfo`; for a test without huge pages use "
                        "the EAL arguments --no-huge -m 512",
                        size),
            kExitEnvironment};
    }
    if (has(log, "invalid core list") || (has(log, "unavailable") && has(log, "lcore")) ||
        has(log, "Invalid 'command line' arguments") || has(log, "unrecognized option") ||
        has(log, "Error parsing") || has(log, "invalid option")) {
        return {
            "EAL rejected its arguments (see its message above). EAL arguments go before "
            "'--', sluice's own after it: sluice -l 0,1 --in-memory -- --config sluice.toml",
            kExitUsage};
    }
    if (err == EACCES || err == EPERM || has(log, "Permission denied")) {
        return {
            "permission denied while starting EAL: run sluice as root (huge pages, device "
            "access and vfio need it)",
            kExitEnvironment};
    }
    if (err == EALREADY) {
        return {"EAL is already initialised in this process", kExitRuntime};
    }
    return {fmt::format("EAL failed to start: {} (see EAL's messages above)",
                        err ? std::strerror(err) : "unknown cause"),
            kExitEnvironment};
}

std::optional<EalFailure> init_eal(std::span<const std::string> eal_args) {
    std::vector<std::string> args;
    args.emplace_back("sluice");
    args.insert(args.end(), eal_args.begin(), eal_args.end());
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    // The tee lives until exit: EAL keeps the stream as its default log.
    static LogTee tee;
    static FILE* stream = [] {
        cookie_io_functions_t io{};
        io.write = tee_write;
        FILE* f = fopencookie(&tee, "w", io);
        if (f) setvbuf(f, nullptr, _IOLBF, 0);
        return f;
    }();
    if (stream) rte_openlog_stream(stream);
    const int rc = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
    const int err = rte_errno;
    if (stream) std::fflush(stream);
    // After start-up nothing needs the copy: log straight to stderr again.
    rte_openlog_stream(nullptr);
    std::string captured = std::move(tee.text);
    tee.text.clear();
    if (rc >= 0) return std::nullopt;
    return explain_eal_failure(captured, err, read_hugepage_facts());
}

}  // namespace sluice::dataplane
