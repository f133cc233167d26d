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

#include "query_remote.hpp"
#include <unistd.h>

#include "sluice/index/builder.hpp"
#include "sluice/index/merge.hpp"
#include "sluice/index/request.hpp"
#include "sluice/index/timefmt.hpp"

namespace {

using namespace sluice;

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2;

const char* kUsage = R"(usage: sluice-query --dir DIR [--dir DIR...] [options] [FILTER]
       sluice-query --url URL [--url URL...] [--dir DIR...] [options] [FILTER]
       sluice-query --dir DIR --flows [options] [FILTER]
       sluice-query --reindex FILE...

Writes the packets of a sluice-collector's capture files that pass FILTER
(tcpdump syntax, e.g. "host 10.1.2.3 and port 443") and lie in the time
range, in time order across files and streams, as pcapng. The index beside
each file (NAME.idx) lets it read only the blocks that can match.

  --dir DIR          a capture directory (repeat for several)
  --url URL          a collector's HTTP listener (http[s]://HOST:PORT, its
                     --metrics address): its GET /query answers the same
                     query on its directory; answers from several collectors
                     and directories are merged in time order (repeat)
  --token-file F     the bearer token for --url (the collector's
                     --http-token-file)
  --ca F             trust this CA for https:// URLs (default: the system's)
  --cert F --key F   a client certificate for https:// URLs
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

Exit codes: 0 done; 1 a directory, file or collector could not be read or
written (or a collector refused the query);
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

// The first line of `path`, without surrounding white space.
std::optional<std::string> read_token(const std::string& path, std::string* error) {
    std::FILE* f = std::fopen(path.c_str(), "r");
    if (!f) {
        *error = "cannot read --token-file " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    // A token is a line of at most kMaxToken bytes; a longer first line is
    // refused, not cut (a cut token would only earn a 401 without a reason).
    constexpr std::size_t kMaxToken = 4096;
    char line[kMaxToken + 2] = "";
    const bool got = std::fgets(line, sizeof line, f) != nullptr;
    std::fclose(f);
    std::string t = got ? line : "";
    if (t.size() > kMaxToken && t.back() != '\n') {
        *error = "--token-file " + path + ": its first line is longer than " +
                 std::to_string(kMaxToken) + " bytes; a bearer token is one short line";
        return std::nullopt;
    }
    const auto b = t.find_first_not_of(" \t\r\n"), e = t.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) {
        *error = "--token-file " + path + " is empty: its first line is the token";
        return std::nullopt;
    }
    return t.substr(b, e - b + 1);
}

// Answers from collectors (and the local directories, as one answer),
// merged in time order into `sink`.
bool run_across(const std::vector<std::string>& urls, const index::QuerySpec& spec,
                std::optional<index::Query> local, const query_tool::RemoteAuth& auth,
                index::QuerySink& sink, bool verbose, std::vector<std::string>& warnings,
                std::string* error) {
    const index::SectionHeader shb = index::section_header(spec, SLUICE_VERSION);
    std::vector<std::unique_ptr<query_tool::AnswerSource>> sources;
    if (local) sources.push_back(query_tool::AnswerSource::local(std::move(*local), shb));
    for (const std::string& u : urls)
        sources.push_back(query_tool::AnswerSource::fetch(u, spec, auth));
    std::vector<index::AnswerReader> readers;
    for (const auto& s : sources) {
        if (s->fd() < 0) {
            *error = s->finish();
            return false;
        }
        readers.emplace_back(s->name(), s->fd());
    }
    std::string merge_error;
    bool ok = index::merge_answers(readers, sink, &merge_error);
    // A source's own failure (an HTTP status, a lost connection) explains
    // a damaged or short answer better than the merge does, and an answer
    // that ended on a block boundary may still have been cut short.
    for (auto& s : sources) {
        const std::string e = s->finish();
        warnings.insert(warnings.end(), s->warnings().begin(), s->warnings().end());
        if (!e.empty() && (ok || error->empty())) *error = e;
        if (!e.empty()) ok = false;
    }
    if (!ok && error->empty()) *error = merge_error;
    if (verbose)
        for (const auto& r : readers)
            std::fprintf(stderr, "sluice-query: %s: %llu packets, %s\n", r.name().c_str(),
                         (unsigned long long)r.packets(), human(r.bytes()).c_str());
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    index::QuerySpec spec;
    std::string out = "-";
    bool out_given = false, flows = false, verbose = false, reindex_mode = false;
    std::vector<std::string> words, reindex_files, urls;
    std::string token_file;
    query_tool::RemoteAuth auth;
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
                   k == "--block-bytes" || k == "--url" || k == "--token-file" || k == "--ca" ||
                   k == "--cert" || k == "--key") {
            const auto v = value(k.c_str());
            if (!v) return usage_error(k + " needs a value");
            if (k == "--dir") {
                spec.dirs.push_back(*v);
            } else if (k == "--url") {
                if (!query_tool::query_url(*v))
                    return usage_error("--url '" + *v +
                                       "': give http://HOST:PORT or https://HOST:PORT");
                urls.push_back(*v);
            } else if (k == "--token-file") {
                token_file = *v;
            } else if (k == "--ca") {
                auth.ca = *v;
            } else if (k == "--cert") {
                auth.cert = *v;
            } else if (k == "--key") {
                auth.key = *v;
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
        if (!spec.dirs.empty() || !urls.empty() || !words.empty() || flows)
            return usage_error("--reindex takes only files (and -v, --block-bytes)");
        return reindex(reindex_files, spec.build, verbose);
    }
    if (spec.dirs.empty() && urls.empty()) return usage_error("--dir DIR or --url URL is required");
    if (urls.empty() && (!token_file.empty() || !auth.ca.empty() || !auth.cert.empty()))
        return usage_error("--token-file, --ca and --cert go with --url");
    if (auth.cert.empty() != auth.key.empty()) return usage_error("--cert and --key go together");
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
    if (!token_file.empty()) {
        const auto t = read_token(token_file, &error);
        if (!t) {
            std::fprintf(stderr, "sluice-query: %s\n", error.c_str());
            return kExitFailed;
        }
        auth.token = *t;
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
    auto run = [&](index::QuerySink& sink) {
        if (urls.empty()) return q->run(sink, st, warnings, &error);
        std::optional<index::Query> local;
        if (!spec.dirs.empty()) local.emplace(std::move(*q));
        return run_across(urls, spec, std::move(local), auth, sink, verbose, warnings, &error);
    };
    bool ok;
    if (flows) {
        index::FlowSink sink;
        ok = run(sink);
        if (ok) sink.write(f);
    } else {
        index::PcapngSink sink(f, shb.application, shb.comment);
        ok = run(sink);
        if (!sink.ok()) {
            error = std::string("cannot write the output: ") + std::strerror(errno);
            ok = false;
        }
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
    if (verbose && urls.empty()) {
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
