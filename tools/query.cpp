// sluice-query: packets back from capture directories, fast. Reads the index
// beside each file (index/, docs/query.md) to read only the blocks that can
// hold matching packets, filters them with libpcap, and merges them in time
// order as pcapng or as a list of flows; rebuilds indexes with --reindex.
#include "sluice/index/query.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "sluice/index/builder.hpp"
#include "sluice/index/request.hpp"
#include "sluice/index/timefmt.hpp"

namespace {

using namespace sluice;

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2;

const char* kUsage = R"(usage: sluice-query --dir DIR [--dir DIR...] [options] [FILTER]
       sluice-query --dir DIR --flows [options] [FILTER]
       sluice-query --reindex FILE...

Writes the packets of a sluice-collector's capture files that pass FILTER
(tcpdump syntax, e.g. "host 10.1.2.3 and port 443") and lie in the time
range, in time order across files and streams, as pcapng. The index beside
each file (NAME.idx) lets it read only the blocks that can match.

  --dir DIR          a capture directory (repeat for several)
  --stream N         only stream N (repeat for several; default: all)
  --from T           packets at or after T
  --to T             packets before T
                     T: RFC 3339 (2024-05-14T14:02:00Z, 2024-05-14T16:02:00.5+02:00)
                     or unix seconds (1715695320.25)
  -w FILE            write the pcapng to FILE ("-": standard output, the
                     default when it is not a terminal)
  --flows            instead of packets, one JSON line per flow (protocol,
                     endpoints, first and last time, packets and bytes each way)
  --inner            FILTER also matches a packet by the innermost packet of
                     the tunnels and tags it travels in (VLAN, MPLS, GRE,
                     ERSPAN, VXLAN, Geneve), as capture.decap = "match" does;
                     the packet is written as stored
  -v, --verbose      say on stderr what was read: files, blocks, bytes
  --reindex FILE...  rebuild FILE.idx from FILE (plain or .zst) alone
  --help, --version

Exit codes: 0 done; 1 a directory or file could not be read or written;
2 bad command line, filter or time. See docs/query.md.
)";

int usage_error(const std::string& m) {
    std::fprintf(stderr, "sluice-query: %s (see --help)\n", m.c_str());
    return kExitUsage;
}

std::string human(uint64_t bytes) {
    char s[32];
    if (bytes >= (1ull << 30))
        std::snprintf(s, sizeof s, "%.2f GiB", double(bytes) / double(1ull << 30));
    else if (bytes >= (1ull << 20))
        std::snprintf(s, sizeof s, "%.1f MiB", double(bytes) / double(1ull << 20));
    else
        std::snprintf(s, sizeof s, "%.1f KiB", double(bytes) / 1024.0);
    return s;
}

double now_s() {
    timespec t;
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return double(t.tv_sec) + double(t.tv_nsec) / 1e9;
}

int reindex(const std::vector<std::string>& files, const index::BuildSettings& s, bool verbose) {
    int rc = kExitOk;
    for (const std::string& f : files) {
        const double t0 = now_s();
        index::DataIndexed r;
        std::string error;
        if (!index::reindex_file(f, s, &r, &error)) {
            std::fprintf(stderr, "sluice-query: %s\n", error.c_str());
            rc = kExitFailed;
            continue;
        }
        if (verbose) {
            FILE* ix = std::fopen(index::index_path(f).c_str(), "rb");
            long size = 0;
            if (ix) {
                std::fseek(ix, 0, SEEK_END);
                size = std::ftell(ix);
                std::fclose(ix);
            }
            std::fprintf(stderr,
                         "sluice-query: %s: %llu packets in %llu blocks, index %s (%.2f%% "
                         "of %s) in %.2f s\n",
                         f.c_str(), (unsigned long long)r.packets, (unsigned long long)r.blocks,
                         human(uint64_t(size)).c_str(),
                         r.covered_end ? 100.0 * double(size) / double(r.covered_end) : 0.0,
                         human(r.covered_end).c_str(), now_s() - t0);
        }
    }
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    index::QuerySpec spec;
    std::string out = "-";
    bool out_given = false, flows = false, verbose = false, reindex_mode = false;
    std::vector<std::string> words, reindex_files;
    const std::vector<std::string> a(argv + 1, argv + argc);
    for (std::size_t i = 0; i < a.size(); ++i) {
        const std::string& k = a[i];
        auto value = [&](const char* what) -> std::optional<std::string> {
            if (i + 1 >= a.size()) return std::nullopt;
            (void)what;
            return a[++i];
        };
        if (k == "--help" || k == "-h") {
            std::fputs(kUsage, stdout);
            return kExitOk;
        }
        if (k == "--version") {
            std::puts("sluice-query " SLUICE_VERSION);
            return kExitOk;
        }
        if (k == "--") {
            words.insert(words.end(), a.begin() + std::ptrdiff_t(i) + 1, a.end());
            break;
        }
        if (reindex_mode && k.rfind('-', 0) != 0) {
            reindex_files.push_back(k);
            continue;
        }
        if (k == "--flows") {
            flows = true;
        } else if (k == "--inner") {
            spec.inner = true;
        } else if (k == "-v" || k == "--verbose") {
            verbose = true;
        } else if (k == "--reindex") {
            reindex_mode = true;
        } else if (k == "--dir" || k == "--stream" || k == "--from" || k == "--to" || k == "-w" ||
                   k == "--block-bytes") {
            const auto v = value(k.c_str());
            if (!v) return usage_error(k + " needs a value");
            if (k == "--dir") {
                spec.dirs.push_back(*v);
            } else if (k == "-w") {
                out = *v;
                out_given = true;
            } else if (k == "--stream") {
                if (auto e = index::add_stream(spec, k, *v)) return usage_error(*e);
            } else if (k == "--block-bytes") {
                char* end = nullptr;
                errno = 0;
                const unsigned long long n = std::strtoull(v->c_str(), &end, 10);
                if (v->empty() || *end || errno || n < 4096)
                    return usage_error(k + " '" + *v + "': give a number >= 4096");
                spec.build.block_bytes = n;
            } else if (auto e = index::set_time(spec, k == "--from", k, *v)) {
                return usage_error(*e);
            }
        } else if (k.size() > 1 && k[0] == '-' && k != "-") {
            return usage_error("unknown option '" + k + "'");
        } else {
            words.push_back(k);
        }
    }
    if (reindex_mode) {
        if (reindex_files.empty()) return usage_error("--reindex needs at least one FILE");
        if (!spec.dirs.empty() || !words.empty() || flows)
            return usage_error("--reindex takes only files (and -v, --block-bytes)");
        return reindex(reindex_files, spec.build, verbose);
    }
    if (spec.dirs.empty()) return usage_error("--dir DIR is required");
    if (auto e = index::check_range(spec, "--from", "--to")) return usage_error(*e);
    for (const std::string& w : words)
        spec.filter += (spec.filter.empty() ? "" : " ") + w;
    if (flows && out_given)
        return usage_error("--flows writes JSON lines to standard output; drop -w");

    std::string error;
    auto q = index::make_query(spec, &error);
    if (!q) {
        std::fprintf(stderr, "sluice-query: %s\n", error.c_str());
        return kExitUsage;
    }

    std::FILE* f = stdout;
    if (!flows) {
        if (out == "-") {
            if (::isatty(STDOUT_FILENO))
                return usage_error("pcapng is binary: give -w FILE, or pipe it (| tcpdump -r -)");
        } else if (!(f = std::fopen(out.c_str(), "wb"))) {
            std::fprintf(stderr, "sluice-query: cannot write %s: %s\n", out.c_str(),
                         std::strerror(errno));
            return kExitFailed;
        }
    }
    static char buf[1 << 20];
    std::setvbuf(f, buf, _IOFBF, sizeof buf);

    const index::SectionHeader shb = index::section_header(spec, SLUICE_VERSION);

    const double t0 = now_s();
    index::QueryStats st;
    std::vector<std::string> warnings;
    bool ok;
    if (flows) {
        index::FlowSink sink;
        ok = q->run(sink, st, warnings, &error);
        if (ok) sink.write(f);
    } else {
        index::PcapngSink sink(f, shb.application, shb.comment);
        ok = q->run(sink, st, warnings, &error) && sink.ok();
        if (ok && !sink.ok())
            error = std::string("cannot write the output: ") + std::strerror(errno);
    }
    if (std::fflush(f) != 0 || (f != stdout && std::fclose(f) != 0)) {
        if (ok) error = "cannot write " + out + ": " + std::strerror(errno);
        ok = false;
    }
    for (const std::string& w : warnings)
        std::fprintf(stderr, "sluice-query: warning: %s\n", w.c_str());
    if (st.files_without_index)
        std::fprintf(stderr,
                     "sluice-query: %llu file(s) without a usable index were read in full; "
                     "sluice-query --reindex FILE builds one\n",
                     (unsigned long long)st.files_without_index);
    if (verbose) {
        std::fprintf(stderr, "sluice-query: index keys: %s\n", q->predicate().describe().c_str());
        std::fprintf(stderr,
                     "sluice-query: %llu files (%llu outside the time range by their index alone), "
                     "%llu blocks opened, %llu in the time range, %llu read (%llu with a "
                     "match): %s of %s data "
                     "(%.3f%%), %s of index, %s not indexed; %llu packets examined, %llu matched "
                     "in %.3f s\n",
                     (unsigned long long)st.files, (unsigned long long)st.files_outside_time,
                     (unsigned long long)st.blocks, (unsigned long long)st.blocks_in_time,
                     (unsigned long long)st.blocks_read, (unsigned long long)st.blocks_matched,
                     human(st.bytes_read).c_str(), human(st.data_bytes).c_str(),
                     st.data_bytes ? 100.0 * double(st.bytes_read) / double(st.data_bytes) : 0.0,
                     human(st.index_bytes_read).c_str(), human(st.unindexed_bytes).c_str(),
                     (unsigned long long)st.packets_examined,
                     (unsigned long long)st.packets_matched, now_s() - t0);
    }
    if (!ok) {
        std::fprintf(stderr, "sluice-query: %s\n", error.c_str());
        return kExitFailed;
    }
    return kExitOk;
}
