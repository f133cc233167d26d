#include "sluice/http/server.hpp"

#include <atomic>
#include <cctype>
#include <csignal>
#include <cstring>
#include <optional>
#include <stdexcept>

#include <civetweb.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sluice/report/log.hpp"
#include "sluice/session/clock.hpp"
#include "sluice/session/key.hpp"

namespace sluice::http {
namespace {

// The connection a worker thread serves: when it began, and whether its
// fate is counted already. civetweb serves a connection on one worker thread
// from init_connection to connection_closed, so the thread holds it (its
// conn_data does not survive the request's parsing).
struct Connection {
    bool active = false;
    bool counted = false;
    uint64_t start_ns = 0;
};
thread_local Connection t_connection;

std::string openssl_error() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "no detail from OpenSSL";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

// Loads the certificate (and its chain), the key and the client CA into
// `ctx`. An empty string, or the reason naming the file and the fix.
std::string apply_tls(SSL_CTX* ctx, const ServerSettings& s) {
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, s.tls_cert.c_str()) != 1)
        return fmt::format("cannot use the TLS certificate {}: {}; give a PEM certificate",
                           s.tls_cert, openssl_error());
    if (const X509* cert = SSL_CTX_get0_certificate(ctx);
        cert && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        return fmt::format("the TLS certificate {} has expired: renew it", s.tls_cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, s.tls_key.c_str(), SSL_FILETYPE_PEM) != 1)
        return fmt::format("cannot use the TLS key {}: {}; give the PEM key, unencrypted",
                           s.tls_key, openssl_error());
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fmt::format("the TLS key {} does not belong to the certificate {}", s.tls_key,
                           s.tls_cert);
    if (!s.tls_ca.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, s.tls_ca.c_str(), nullptr) != 1)
            return fmt::format("cannot use the TLS CA {}: {}; give PEM certificates", s.tls_ca,
                               openssl_error());
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.tls_ca.c_str()))
            SSL_CTX_set_client_CA_list(ctx, names);
        // No certificate, or one the CA did not sign: the handshake fails.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return {};
}

// "Bearer <token>", the scheme in any case.
std::string_view bearer(const char* header) {
    if (!header) return {};
    std::string_view h = header;
    if (h.size() < 7 || ::strncasecmp(h.data(), "bearer ", 7) != 0) return {};
    h.remove_prefix(7);
    while (!h.empty() && h.front() == ' ')
        h.remove_prefix(1);
    while (!h.empty() && h.back() == ' ')
        h.remove_suffix(1);
    return h;
}

// Equal in time independent of where they differ, and of their lengths:
// both sides are hashed first (session's one keyed hash), then compared.
bool token_matches(std::string_view given, std::span<const std::byte> expected) {
    const auto key = session::label("sluice http bearer token");
    const auto bytes = [](std::string_view s) {
        return std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()), s.size());
    };
    if (given.size() > 256) return false;
    return session::proofs_equal(session::hmac_sha256(key, {bytes(given)}),
                                 session::hmac_sha256(key, {expected}));
}

// Query parameters: '&'-separated NAME=VALUE, percent- and '+'-decoded.
// The reason when the query string is refused, nullopt when it is read.
std::optional<std::string> parse_params(const char* qs,
                                        std::vector<std::pair<std::string, std::string>>& out) {
    if (!qs) return std::nullopt;
    std::string_view q = qs;
    enum class Bad { none, encoding, control };
    auto decode = [](std::string_view in, std::string& to) {
        // A '%' not followed by two hex digits passes civetweb's decoder
        // as it is: refuse it rather than guess.
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (in[i] == '%' && (i + 2 >= in.size() || !std::isxdigit(uint8_t(in[i + 1])) ||
                                 !std::isxdigit(uint8_t(in[i + 2]))))
                return Bad::encoding;
        }
        to.resize(in.size() + 1);
        const int n = mg_url_decode(in.data(), static_cast<int>(in.size()), to.data(),
                                    static_cast<int>(to.size()), 1);
        if (n < 0) return Bad::encoding;
        to.resize(static_cast<std::size_t>(n));
        // A NUL would end the text where libpcap reads it (a filter checked
        // is not the filter logged), a line break would forge log lines and
        // split the one-line errors that quote the value: no control bytes.
        for (const char ch : to) {
            const auto c = static_cast<unsigned char>(ch);
            if (c < 0x20 || c == 0x7f) return Bad::control;
        }
        return Bad::none;
    };
    while (!q.empty()) {
        const std::size_t amp = q.find('&');
        const std::string_view part = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (part.empty()) continue;
        const std::size_t eq = part.find('=');
        std::string name, value;
        Bad bad = decode(part.substr(0, eq), name);
        if (bad == Bad::none && eq != std::string_view::npos)
            bad = decode(part.substr(eq + 1), value);
        if (bad == Bad::encoding)
            return "the query string is not URL-encoded (a '%' without two hex digits)";
        if (bad == Bad::control)
            return "the query string holds a control character (%00-%1F or %7F): give "
                   "printable text";
        out.emplace_back(std::move(name), std::move(value));
    }
    return std::nullopt;
}

// civetweb's own messages (TLS handshake errors, ...): at most one line per
// 10 s, so a flood of broken connections cannot flood the log.
std::atomic<uint64_t> g_next_log_ns{0};
std::atomic<uint64_t> g_suppressed{0};

}  // namespace

// ---- civetweb's callbacks -----------------------------------------------------------

struct Server::Glue {
    static Server& of(const mg_connection* c) {
        return *static_cast<Server*>(mg_get_user_data(mg_get_context(c)));
    }

    static int init_connection(const mg_connection*, void**) {
        t_connection = Connection{true, false, session::monotonic_ns()};
        return 0;
    }

    static void connection_closed(const mg_connection* c) {
        if (t_connection.active && !t_connection.counted) of(c).counters_.incomplete.inc();
        t_connection = Connection{};
    }

    // civetweb answers by itself only before a handler runs: a request it
    // could not read whole (malformed, too large, or not complete within the
    // timeout). The answer is one line saying what the bounds are, like
    // every other refusal, rather than civetweb's error page.
    static int http_error(mg_connection* c, int status, const char* errmsg) {
        Server& self = of(c);
        Connection& st = t_connection;
        const bool late = st.active && session::monotonic_ns() - st.start_ns >=
                                           uint64_t(self.settings_.timeout_ms) * 1'000'000;
        st.counted = true;
        (late ? self.counters_.incomplete : self.counters_.bad_requests).inc();
        const std::string reason =
            late ? fmt::format("the request did not arrive whole within {} ms: send it at once",
                               self.settings_.timeout_ms)
                 : fmt::format(
                       "the request cannot be read ({}): this listener takes a request "
                       "line and headers of at most {} bytes, the query string included",
                       errmsg && *errmsg ? errmsg : "malformed", kMaxRequestBytes);
        mg_printf(c,
                  "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                  "%s\n",
                  status, mg_get_response_code_text(c, status), reason.size() + 1, reason.c_str());
        return 0;  // answered
    }

    static int log_message(const mg_connection* c, const char* message) {
        // acquire: pairs with the constructor's release store once started.
        if (!c || !of(c).started_.load(std::memory_order_acquire)) return 1;
        const uint64_t now = session::monotonic_ns();
        uint64_t next = g_next_log_ns.load(std::memory_order_relaxed);
        // relaxed: only rate-limits log lines; nothing else is published.
        if (now < next || !g_next_log_ns.compare_exchange_strong(next, now + 10'000'000'000ull,
                                                                 std::memory_order_relaxed)) {
            g_suppressed.fetch_add(1, std::memory_order_relaxed);
            return 1;
        }
        const uint64_t more = g_suppressed.exchange(0, std::memory_order_relaxed);
        const std::string& what = of(c).what_;
        std::string text = message ? message : "";
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
            text.pop_back();
        report::log_warning(
            "{}: {}{}", what, text,
            more ? fmt::format(" ({} more such lines in the last 10 s)", more) : std::string());
        return 1;
    }

    static int init_ssl(void* ctx, void* user) {
        const Server& self = *static_cast<const Server*>(user);
        return apply_tls(static_cast<SSL_CTX*>(ctx), self.settings_).empty() ? 1 : -1;
    }

    static int request(mg_connection* c, void* user) {
        static_cast<Server*>(user)->handle(c);
        return 1;
    }
};

// ---- the server ----------------------------------------------------------------------

Server::Server(const ServerSettings& settings, std::vector<Route> routes, std::string what)
    : settings_(settings), routes_(std::move(routes)), what_(std::move(what)) {
    const bool tls = !settings_.tls_cert.empty() || !settings_.tls_key.empty();
    if (tls) {
        if (settings_.tls_cert.empty() || settings_.tls_key.empty())
            throw std::invalid_argument(fmt::format(
                "{}: HTTPS needs both a certificate and its key (the TLS cert and key options)",
                what_));
        // Checked here, where the error can name the file; civetweb's
        // init_ssl applies the same to its own context.
        SSL_CTX* check = SSL_CTX_new(TLS_server_method());
        if (!check) throw std::runtime_error(fmt::format("{}: {}", what_, openssl_error()));
        const std::string err = apply_tls(check, settings_);
        SSL_CTX_free(check);
        if (!err.empty()) throw std::invalid_argument(fmt::format("{}: {}", what_, err));
    } else if (!settings_.tls_ca.empty()) {
        throw std::invalid_argument(fmt::format(
            "{}: client certificates (the TLS CA option) need HTTPS: give the TLS certificate "
            "and key too",
            what_));
    }
    if (settings_.threads < 1) settings_.threads = 1;

    const session::ResolvedAddress addr = session::resolve(settings_.listen, true);
    std::string ports =
        session::format_address(reinterpret_cast<const sockaddr*>(&addr.addr), addr.len);
    host_ = ports.substr(0, ports.rfind(':'));
    if (tls) ports += 's';
    const std::string threads = std::to_string(settings_.threads);
    const std::string timeout = std::to_string(settings_.timeout_ms);
    const std::string max_request = std::to_string(kMaxRequestBytes);
    const char* options[] = {"listening_ports",
                             ports.c_str(),
                             "num_threads",
                             threads.c_str(),
                             "request_timeout_ms",
                             timeout.c_str(),
                             "max_request_size",
                             max_request.c_str(),
                             "enable_keep_alive",
                             "no",
                             "enable_auth_domain_check",
                             "no",
                             nullptr};
    mg_callbacks cb{};
    cb.init_connection = &Glue::init_connection;
    cb.connection_closed = &Glue::connection_closed;
    cb.http_error = &Glue::http_error;
    cb.log_message = &Glue::log_message;
    if (tls) cb.init_ssl = &Glue::init_ssl;
    mg_init_data init{&cb, this, options};
    char error_text[256] = "";
    unsigned error_code = 0;
    mg_error_data error{&error_code, error_text, sizeof error_text};
    // civetweb ignores SIGCHLD for its CGI support, which sluice does not
    // use: put back what the program had, so its own children stay waitable.
    struct sigaction chld {};
    ::sigaction(SIGCHLD, nullptr, &chld);
    // civetweb loads OpenSSL here (it finds libssl at run time), not when
    // a context starts: without it, a TLS connection calls through null.
    const unsigned features = mg_init_library(tls ? MG_FEATURES_TLS : 0);
    if (tls && !(features & MG_FEATURES_TLS)) {
        mg_exit_library();
        throw std::runtime_error(fmt::format(
            "{}: HTTPS is not available: civetweb {} could not load OpenSSL (it opens libssl.so "
            "at run time and needs OpenSSL 1.1's SSL_get_peer_certificate, which OpenSSL 3 no "
            "longer has: Debian 12's civetweb 1.15 cannot). Serve on loopback behind a TLS "
            "proxy, with --http-token-file",
            what_, mg_version()));
    }
    ctx_ = mg_start2(&init, &error);
    ::sigaction(SIGCHLD, &chld, nullptr);
    if (!ctx_) {
        mg_exit_library();
        throw std::runtime_error(
            fmt::format("{}: cannot listen on {}: {}; is another program using the port?", what_,
                        settings_.listen.to_string(), error_text[0] ? error_text : "civetweb"));
    }
    mg_server_port p[2]{};
    if (mg_get_server_ports(ctx_, 2, p) >= 1) port_ = static_cast<uint16_t>(p[0].port);
    // One handler for every path: the routes are matched here, exactly, so
    // civetweb never serves anything by itself.
    mg_set_request_handler(ctx_, "**", &Glue::request, this);
    // release: what_ and settings_ are written; pairs with log_message.
    started_.store(true, std::memory_order_release);
}

void Server::stop() {
    if (!ctx_) return;
    mg_stop(ctx_);
    ctx_ = nullptr;
    mg_exit_library();  // one for the constructor's mg_init_library
}

std::string Server::url() const {
    const bool tls = !settings_.tls_cert.empty();
    return fmt::format("{}://{}:{}", tls ? "https" : "http", host_, port_);
}

void Server::handle(mg_connection* c) {
    t_connection.counted = true;
    const mg_request_info* ri = mg_get_request_info(c);
    Response resp(c, ri->http_version && std::strcmp(ri->http_version, "1.1") == 0);
    Request req;
    req.method_ = ri->request_method ? ri->request_method : "";
    req.path_ = ri->local_uri ? ri->local_uri : "";
    req.remote_ = fmt::format("{}:{}", ri->remote_addr, ri->remote_port);

    const Route* route = nullptr;
    for (const Route& r : routes_) {
        if (r.path == req.path_) route = &r;
    }
    std::string paths;
    for (const Route& r : routes_)
        paths += (paths.empty() ? "" : ", ") + r.path;

    if (ri->num_headers >= kMaxHeaders) {
        resp.error(431, fmt::format("more than {} headers", kMaxHeaders - 1));
    } else if (!route) {
        resp.error(404, fmt::format("no such path: this listener serves {}", paths));
    } else if (req.method_ != "GET") {
        resp.send(405, "text/plain; charset=utf-8", "only GET\n", {{"Allow", "GET"}});
    } else if (route->authenticated && settings_.token.empty() && settings_.tls_ca.empty()) {
        resp.error(403, fmt::format("{} is off: it needs authentication, and the listener has "
                                    "none (a token file or a client CA)",
                                    route->path));
    } else if (route->authenticated && !settings_.token.empty() &&
               !token_matches(bearer(mg_get_header(c, "Authorization")), settings_.token)) {
        resp.send(401, "text/plain; charset=utf-8",
                  "a bearer token is required: Authorization: Bearer <the token file's text>\n",
                  {{"WWW-Authenticate", "Bearer"}});
    } else if (const auto bad = parse_params(ri->query_string, req.params_)) {
        resp.error(400, *bad);
    } else {
        try {
            route->handler(req, resp);
        } catch (const std::exception& e) {
            report::log_error("{}: {} {}: {}", what_, req.method_, req.path_, e.what());
            if (resp.status_ == 0) resp.error(500, e.what());
        }
        if (resp.status_ == 0) resp.error(500, "no response");
    }
    counters_.requests.inc();
    if (resp.status_ == 401) {
        counters_.unauthorized.inc();
    } else if (resp.status_ >= 400 && resp.status_ < 500) {
        counters_.bad_requests.inc();
    }
}

// ---- responses -----------------------------------------------------------------------

bool Response::send(int status, std::string_view content_type, std::string_view body,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
    if (status_ != 0) return false;
    status_ = status;
    mg_response_header_start(conn_, status);
    mg_response_header_add(conn_, "Content-Type", content_type.data(),
                           static_cast<int>(content_type.size()));
    mg_response_header_add(conn_, "Content-Length", std::to_string(body.size()).c_str(), -1);
    mg_response_header_add(conn_, "Cache-Control", "no-store", -1);
    for (const auto& [k, v] : headers)
        mg_response_header_add(conn_, k.c_str(), v.c_str(), -1);
    if (mg_response_header_send(conn_) < 0) return false;
    return body.empty() || mg_write(conn_, body.data(), body.size()) == int(body.size());
}

bool Response::start_stream(std::string_view content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
    if (status_ != 0) return false;
    status_ = 200;
    mg_response_header_start(conn_, 200);
    mg_response_header_add(conn_, "Content-Type", content_type.data(),
                           static_cast<int>(content_type.size()));
    mg_response_header_add(conn_, "Cache-Control", "no-store", -1);
    if (chunked_) mg_response_header_add(conn_, "Transfer-Encoding", "chunked", -1);
    for (const auto& [k, v] : headers)
        mg_response_header_add(conn_, k.c_str(), v.c_str(), -1);
    return mg_response_header_send(conn_) >= 0;
}

bool Response::write(std::span<const std::byte> bytes) {
    if (bytes.empty()) return true;
    const auto* p = reinterpret_cast<const char*>(bytes.data());
    if (chunked_) return mg_send_chunk(conn_, p, static_cast<unsigned>(bytes.size())) > 0;
    return mg_write(conn_, p, bytes.size()) == int(bytes.size());
}

bool Response::finish() {
    return !chunked_ || mg_send_chunk(conn_, "", 0) >= 0;
}

}  // namespace sluice::http
