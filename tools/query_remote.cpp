#include "query_remote.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>

#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "sluice/index/timefmt.hpp"

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

class PipeOutput final : public index::ByteOutput {
  public:
    explicit PipeOutput(int fd) : fd_(fd) {}
    bool write(std::span<const std::byte> b) override { return write_all(fd_, b.data(), b.size()); }

  private:
    int fd_;
};

struct Transfer {
    CURL* curl = nullptr;
    int fd = -1;
    long status = 0;
    std::string body;  // of an answer other than 200: the collector's reason
    bool pipe_closed = false;
};

size_t on_data(char* p, size_t size, size_t n, void* user) {
    auto& t = *static_cast<Transfer*>(user);
    const size_t bytes = size * n;
    if (t.status == 0) curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
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

std::string escape(CURL* c, const std::string& v) {
    char* e = curl_easy_escape(c, v.data(), int(v.size()));
    std::string s = e ? e : "";
    curl_free(e);
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
    static const bool http_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    std::unique_ptr<AnswerSource> s(new AnswerSource(url));
    if (s->write_fd_ < 0) return s;
    if (!http_ready) {
        s->error_ = url + ": cannot start the HTTP library (libcurl)";
        ::close(s->read_fd_), ::close(s->write_fd_);
        s->read_fd_ = s->write_fd_ = -1;
        return s;
    }
    s->thread_ = std::thread([src = s.get(), target = query_url(url).value_or(url), spec, auth] {
        block_sigpipe();
        Transfer t;
        t.fd = src->write_fd_;
        t.curl = curl_easy_init();
        curl_slist* headers = nullptr;
        if (!t.curl) {
            src->error_ = src->name_ + ": cannot start an HTTP client";
        } else {
            std::string q;
            auto add = [&](const char* k, const std::string& v) {
                q += (q.empty() ? "?" : "&") + std::string(k) + "=" + escape(t.curl, v);
            };
            if (!spec.filter.empty()) add("filter", spec.filter);
            if (spec.from_ns) add("from", index::format_time(spec.from_ns));
            if (spec.to_ns != UINT64_MAX) add("to", index::format_time(spec.to_ns));
            for (uint64_t id : spec.streams)
                add("stream", std::to_string(id));
            if (spec.inner) add("inner", "1");
            const std::string full = target + q;
            const std::string bearer = "Authorization: Bearer " + auth.token;
            if (!auth.token.empty()) headers = curl_slist_append(headers, bearer.c_str());
            char why[CURL_ERROR_SIZE] = "";
            curl_easy_setopt(t.curl, CURLOPT_URL, full.c_str());
            curl_easy_setopt(t.curl, CURLOPT_PROTOCOLS_STR, "http,https");
            curl_easy_setopt(t.curl, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(t.curl, CURLOPT_ERRORBUFFER, why);
            curl_easy_setopt(t.curl, CURLOPT_HTTPHEADER, headers);
            curl_easy_setopt(t.curl, CURLOPT_CONNECTTIMEOUT, 10L);
            curl_easy_setopt(t.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
            curl_easy_setopt(t.curl, CURLOPT_LOW_SPEED_TIME, auth.stall_timeout_s);
            curl_easy_setopt(t.curl, CURLOPT_WRITEFUNCTION, on_data);
            curl_easy_setopt(t.curl, CURLOPT_WRITEDATA, &t);
            if (!auth.ca.empty()) curl_easy_setopt(t.curl, CURLOPT_CAINFO, auth.ca.c_str());
            if (!auth.cert.empty()) curl_easy_setopt(t.curl, CURLOPT_SSLCERT, auth.cert.c_str());
            if (!auth.key.empty()) curl_easy_setopt(t.curl, CURLOPT_SSLKEY, auth.key.c_str());
            const CURLcode rc = curl_easy_perform(t.curl);
            if (t.status == 0) curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
            if (t.pipe_closed) {
                // The merge stopped reading: its own error says why.
            } else if (rc != CURLE_OK) {
                src->error_ = src->name_ + ": " + (why[0] ? why : curl_easy_strerror(rc));
            } else if (t.status != 200) {
                src->error_ = src->name_ + ": HTTP " + std::to_string(t.status) +
                              (t.body.empty() ? "" : ": " + first_line(t.body));
            }
        }
        curl_slist_free_all(headers);
        if (t.curl) curl_easy_cleanup(t.curl);
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
