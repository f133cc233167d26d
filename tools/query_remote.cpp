#include "query_remote.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <type_traits>

// The types and constants only: libcurl itself is loaded with dlopen.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "sluice/index/timefmt.hpp"
#include "sluice/report/shared_library.hpp"

namespace sluice::query_tool {

namespace {

// Writes to the pipe whole; false once the merge stopped reading (EPIPE:
// SIGPIPE is blocked in the writing threads).
bool write_all(int fd, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n) {
        const ssize_t w = ::write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        c += w, n -= std::size_t(w);
    }
    return true;
}

void block_sigpipe() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

// libcurl, loaded the first time a --url asks for it: linked, its twenty
// libraries would be loaded and relocated at every sluice-query start, a
// third of a query that finds nothing (docs/performance.md, "Retrieval").
struct Curl {
    CURLcode (*global_init)(long);
    CURL* (*easy_init)();
    CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
    CURLcode (*easy_perform)(CURL*);
    CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
    void (*easy_cleanup)(CURL*);
    const char* (*easy_strerror)(CURLcode);
    char* (*easy_escape)(CURL*, const char*, int);
    void (*free)(void*);
    curl_slist* (*slist_append)(curl_slist*, const char*);
    void (*slist_free_all)(curl_slist*);
};

// Loads libcurl and initialises it, once (from the main thread, before any
// fetch starts); nullptr and `error` when it cannot.
const Curl* load_curl(std::string* error) {
    static std::string failure;
    static const Curl* const api = []() -> const Curl* {
        static Curl c;
        using report::symbol;
        failure = report::load_shared_library(
            "libcurl.so.4", "libcurl4",
            {symbol(c.global_init, "curl_global_init"), symbol(c.easy_init, "curl_easy_init"),
             symbol(c.easy_setopt, "curl_easy_setopt"), symbol(c.easy_perform, "curl_easy_perform"),
             symbol(c.easy_getinfo, "curl_easy_getinfo"),
             symbol(c.easy_cleanup, "curl_easy_cleanup"),
             symbol(c.easy_strerror, "curl_easy_strerror"),
             symbol(c.easy_escape, "curl_easy_escape"), symbol(c.free, "curl_free"),
             symbol(c.slist_append, "curl_slist_append"),
             symbol(c.slist_free_all, "curl_slist_free_all")});
        if (!failure.empty()) return nullptr;
        if (c.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            failure = "libcurl cannot initialise (curl_global_init failed)";
            return nullptr;
        }
        return &c;
    }();
    if (!api) *error = failure;
    return api;
}

class PipeOutput final : public index::ByteOutput {
  public:
    explicit PipeOutput(int fd) : fd_(fd) {}
    bool write(std::span<const std::byte> b) override { return write_all(fd_, b.data(), b.size()); }

  private:
    int fd_;
};

struct Transfer {
    const Curl* api = nullptr;
    CURL* curl = nullptr;
    int fd = -1;
    long status = 0;
    std::string body;  // of an answer other than 200: the collector's reason
    bool pipe_closed = false;
};

size_t on_data(char* p, size_t size, size_t n, void* user) {
    auto& t = *static_cast<Transfer*>(user);
    const size_t bytes = size * n;
    if (t.status == 0) t.api->easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
    if (t.status != 200) {
        if (t.body.size() < 512) t.body.append(p, std::min<size_t>(bytes, 512 - t.body.size()));
        return bytes;
    }
    if (!write_all(t.fd, p, bytes)) {
        t.pipe_closed = true;
        return 0;  // aborts the transfer
    }
    return bytes;
}

std::string first_line(std::string s) {
    const auto nl = s.find_first_of("\r\n");
    if (nl != std::string::npos) s.resize(nl);
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return s;
}

std::string escape(const Curl& api, CURL* c, const std::string& v) {
    char* e = api.easy_escape(c, v.data(), int(v.size()));
    std::string s = e ? e : "";
    api.free(e);
    return s;
}

}  // namespace

std::optional<std::string> query_url(const std::string& url) {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) return std::nullopt;
    std::string u = url;
    while (!u.empty() && u.back() == '/')
        u.pop_back();
    const std::string tail = "/query";
    if (u.size() < tail.size() || u.compare(u.size() - tail.size(), tail.size(), tail) != 0)
        u += tail;
    return u;
}

AnswerSource::AnswerSource(std::string name) : name_(std::move(name)) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        error_ = "cannot make a pipe: " + std::string(std::strerror(errno));
        return;
    }
    read_fd_ = p[0], write_fd_ = p[1];
}

AnswerSource::~AnswerSource() {
    finish();
}

std::string AnswerSource::finish() {
    if (!finished_) {
        finished_ = true;
        if (read_fd_ >= 0) ::close(read_fd_);  // a writer still writing gets EPIPE
        read_fd_ = -1;
        if (thread_.joinable()) thread_.join();
    }
    return error_;
}

std::unique_ptr<AnswerSource> AnswerSource::fetch(const std::string& url,
                                                  const index::QuerySpec& spec,
                                                  const RemoteAuth& auth) {
    std::string why;
    const Curl* api = load_curl(&why);
    std::unique_ptr<AnswerSource> s(new AnswerSource(url));
    if (s->write_fd_ < 0) return s;
    if (!api) {
        s->error_ = url + ": " + why;
        ::close(s->read_fd_), ::close(s->write_fd_);
        s->read_fd_ = s->write_fd_ = -1;
        return s;
    }
    s->thread_ =
        std::thread([src = s.get(), api, target = query_url(url).value_or(url), spec, auth] {
            block_sigpipe();
            Transfer t;
            t.api = api;
            t.fd = src->write_fd_;
            t.curl = api->easy_init();
            curl_slist* headers = nullptr;
            if (!t.curl) {
                src->error_ = src->name_ + ": cannot start an HTTP client";
            } else {
                std::string q;
                auto add = [&](const char* k, const std::string& v) {
                    q += (q.empty() ? "?" : "&") + std::string(k) + "=" + escape(*api, t.curl, v);
                };
                if (!spec.filter.empty()) add("filter", spec.filter);
                if (spec.from_ns) add("from", index::format_time(spec.from_ns));
                if (spec.to_ns != UINT64_MAX) add("to", index::format_time(spec.to_ns));
                for (uint64_t id : spec.streams)
                    add("stream", std::to_string(id));
                if (spec.inner) add("inner", "1");
                const std::string full = target + q;
                const std::string bearer = "Authorization: Bearer " + auth.token;
                if (!auth.token.empty()) headers = api->slist_append(headers, bearer.c_str());
                char why[CURL_ERROR_SIZE] = "";
                api->easy_setopt(t.curl, CURLOPT_URL, full.c_str());
                api->easy_setopt(t.curl, CURLOPT_PROTOCOLS_STR, "http,https");
                api->easy_setopt(t.curl, CURLOPT_NOSIGNAL, 1L);
                api->easy_setopt(t.curl, CURLOPT_ERRORBUFFER, why);
                api->easy_setopt(t.curl, CURLOPT_HTTPHEADER, headers);
                api->easy_setopt(t.curl, CURLOPT_CONNECTTIMEOUT, 10L);
                api->easy_setopt(t.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
                api->easy_setopt(t.curl, CURLOPT_LOW_SPEED_TIME, auth.stall_timeout_s);
                api->easy_setopt(t.curl, CURLOPT_WRITEFUNCTION, on_data);
                api->easy_setopt(t.curl, CURLOPT_WRITEDATA, &t);
                if (!auth.ca.empty()) api->easy_setopt(t.curl, CURLOPT_CAINFO, auth.ca.c_str());
                if (!auth.cert.empty())
                    api->easy_setopt(t.curl, CURLOPT_SSLCERT, auth.cert.c_str());
                if (!auth.key.empty()) api->easy_setopt(t.curl, CURLOPT_SSLKEY, auth.key.c_str());
                const CURLcode rc = api->easy_perform(t.curl);
                if (t.status == 0) api->easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
                if (t.pipe_closed) {
                    // The merge stopped reading: its own error says why.
                } else if (rc != CURLE_OK) {
                    src->error_ = src->name_ + ": " + (why[0] ? why : api->easy_strerror(rc));
                } else if (t.status != 200) {
                    src->error_ = src->name_ + ": HTTP " + std::to_string(t.status) +
                                  (t.body.empty() ? "" : ": " + first_line(t.body));
                }
            }
            api->slist_free_all(headers);
            if (t.curl) api->easy_cleanup(t.curl);
            ::close(src->write_fd_);
        });
    return s;
}

std::unique_ptr<AnswerSource> AnswerSource::local(index::Query q, const index::SectionHeader& shb) {
    std::string name = "local directories";
    std::unique_ptr<AnswerSource> s(new AnswerSource(name));
    if (s->write_fd_ < 0) return s;
    s->thread_ = std::thread([src = s.get(), q = std::move(q), shb]() mutable {
        block_sigpipe();
        PipeOutput out(src->write_fd_);
        index::PcapngSink sink(out, shb.application, shb.comment);
        index::QueryStats st;
        std::string error;
        if (!q.run(sink, st, src->warnings_, &error) && sink.ok())
            src->error_ = src->name_ + ": " + error;
        ::close(src->write_fd_);
    });
    return s;
}

}  // namespace sluice::query_tool
