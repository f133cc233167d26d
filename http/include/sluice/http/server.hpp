// The HTTP listener of sluice ([stats] prometheus: GET /metrics) and
// sluice-collector (--metrics: GET /metrics and GET /query). civetweb
// accepts and parses; this layer adds what a listener facing the network
// needs and counts what it refuses:
//
//   - bounds: a request line and headers of at most kMaxRequestBytes and
//     kMaxHeaders headers (431 beyond), GET only (405), known paths (404),
//     query parameters URL-encoded and, decoded, free of control bytes
//     (400: they are quoted in errors and logs, and handed to libpcap);
//   - time: a whole request must arrive within `timeout_ms`, and each piece
//     of a response must leave within it, so an idle, slow-sending or
//     slow-reading client (slowloris) holds a worker thread for a bounded
//     time; one request per connection (no keep-alive to hold one idle);
//   - authentication of the routes that need it: a bearer token from a file
//     (compared in constant time), and/or TLS with client certificates
//     signed by a given CA (docs/operations.md, "The HTTP listener").
//
// Handlers run on civetweb's worker threads, never on the caller's: the
// collector's event loop and the dataplane's lcores are not touched. At most
// `threads` requests are served at once; further connections wait in
// civetweb's queue (20) and the kernel's backlog.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/lockfree/counter.hpp"
#include "sluice/session/endpoint.hpp"

struct mg_connection;
struct mg_context;

namespace sluice::http {

inline constexpr std::size_t kMaxRequestBytes = 8192;  // request line and headers
inline constexpr int kMaxHeaders = 32;

// Written by every worker thread: SharedCounter.
#define SLUICE_HTTP_COUNTERS(_)                                                                \
    _(requests, "HTTP requests answered, whatever their status.")                              \
    _(unauthorized,                                                                            \
      "Requests refused with 401: no bearer token where one is required, or a wrong one. "     \
      "A steady count is someone without the token trying.")                                   \
    _(bad_requests,                                                                            \
      "Requests refused as malformed or out of bounds (400, 403, 404, 405, 413, 431): more "   \
      "than 8 KiB of request line and headers or more than 32 headers, an unknown path or "    \
      "method, a parameter that is not one (a bad filter or time), a path that needs "         \
      "authentication when none is configured.")                                               \
    _(incomplete,                                                                              \
      "Connections closed without a complete request: idle or slow clients cut off at the "    \
      "request timeout (a slowloris attack shows here), clients that connected and left, and " \
      "TLS handshakes that failed (no client certificate, or one the CA did not sign).")
SLUICE_SHARED_COUNTER_BLOCK(HttpCounters, SLUICE_HTTP_COUNTERS);

struct ServerSettings {
    session::Endpoint listen{"127.0.0.1", 0};  // port 0: any free port (see port())
    unsigned threads = 4;                      // requests served at once
    uint32_t timeout_ms = 10000;               // see above
    // Authentication of the routes marked `authenticated`; none set: such
    // routes are refused (403) as not configured.
    std::vector<std::byte> token;  // required as "Authorization: Bearer <token>"
    // TLS (HTTPS) when cert and key are set (PEM; the certificate file may
    // hold the chain after it). With ca, every client must present a
    // certificate it signed, on every path.
    std::string tls_cert, tls_key, tls_ca;
};

class Request {
  public:
    std::string_view method() const { return method_; }
    std::string_view path() const { return path_; }
    std::string_view remote() const { return remote_; }  // "ADDR:PORT" for logs
    // Query parameters in their order, decoded ('+' and %20 are spaces).
    const std::vector<std::pair<std::string, std::string>>& params() const { return params_; }

  private:
    friend class Server;
    std::string method_, path_, remote_;
    std::vector<std::pair<std::string, std::string>> params_;
};

class Response {
  public:
    // A whole response: status, one Content-Type and the body.
    bool send(int status, std::string_view content_type, std::string_view body,
              const std::vector<std::pair<std::string, std::string>>& headers = {});
    // An error: the one-line reason as text/plain.
    bool error(int status, std::string_view reason) {
        return send(status, "text/plain; charset=utf-8", std::string(reason) + "\n");
    }
    // A body of unknown length: status 200 now, then write() pieces (chunked
    // with HTTP/1.1; until the connection closes with HTTP/1.0), then
    // finish(). A write that fails (the client left, or did not take it
    // within the timeout) returns false: stop. A response that never
    // finishes ends without its last chunk, so the client sees it cut.
    bool start_stream(std::string_view content_type,
                      const std::vector<std::pair<std::string, std::string>>& headers = {});
    bool write(std::span<const std::byte> bytes);
    bool finish();
    int status() const { return status_; }

  private:
    friend class Server;
    explicit Response(mg_connection* c, bool chunked) : conn_(c), chunked_(chunked) {}
    mg_connection* conn_;
    bool chunked_;
    int status_ = 0;
};

struct Route {
    std::string path;  // exact: "/metrics"
    bool authenticated = false;
    std::function<void(const Request&, Response&)> handler;
};

class Server {
  public:
    // Listens and starts the worker threads. Throws std::invalid_argument
    // for settings that cannot work (unreadable or mismatched TLS files, a
    // key without a certificate) and std::runtime_error when it cannot
    // listen (address in use), each naming `what` (the option) and the fix.
    Server(const ServerSettings& settings, std::vector<Route> routes, std::string what);
    // Stops accepting and waits for the handlers that run (make them end:
    // a handler that streams checks its own stop flag). The counters stay.
    void stop();
    ~Server() { stop(); }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    uint16_t port() const { return port_; }
    std::string url() const;  // "http://127.0.0.1:9470", "https://[::1]:9470"
    const HttpCounters& counters() const { return counters_; }

  private:
    struct Glue;
    friend struct Glue;
    void handle(mg_connection* c);

    ServerSettings settings_;
    std::vector<Route> routes_;
    std::string what_;
    std::string host_;  // numeric, for url()
    uint16_t port_ = 0;
    HttpCounters counters_;
    // Set once started: civetweb's complaints while starting (a port in
    // use) become the constructor's exception, not log lines too.
    std::atomic<bool> started_{false};
    mg_context* ctx_ = nullptr;
};

}  // namespace sluice::http
