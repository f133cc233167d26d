// http/: the listener both programs serve /metrics (and the collector
// /query) on, driven by a client written here over plain sockets so every
// byte of a request (and of an attack) is the test's. TLS is tested end to
// end in tests/system/test_http_query.py (curl with certificates).
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/http/server.hpp"

namespace sluice::http {
namespace {

int connect_to(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

// The whole response (headers and body) to `request`, sent as it is.
std::string round_trip(uint16_t port, const std::string& request) {
    const int fd = connect_to(port);
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), ssize_t(request.size()));
    return read_all(fd);
}

std::string get(uint16_t port, const std::string& target, const std::string& headers = "",
                const std::string& version = "1.1") {
    return round_trip(port,
                      "GET " + target + " HTTP/" + version + "\r\nHost: x\r\n" + headers + "\r\n");
}

int status_of(const std::string& response) {
    if (response.size() < 12) return 0;
    return std::stoi(response.substr(9, 3));
}

std::string body_of(const std::string& response) {
    const auto p = response.find("\r\n\r\n");
    return p == std::string::npos ? "" : response.substr(p + 4);
}

// Undoes chunked transfer coding; "" when the last chunk is missing.
std::string dechunk(std::string b) {
    std::string out;
    for (;;) {
        const auto eol = b.find("\r\n");
        if (eol == std::string::npos) return "";
        const std::size_t n = std::stoul(b.substr(0, eol), nullptr, 16);
        if (n == 0) return out;
        out += b.substr(eol + 2, n);
        b = b.substr(eol + 2 + n + 2);
    }
}

struct Fixture : ::testing::Test {
    std::vector<Route> routes() {
        return {
            {"/metrics", false,
             [](const Request&, Response& r) { r.send(200, "text/plain", "m 1\n"); }},
            {"/echo", true,
             [this](const Request& q, Response& r) {
                 std::string s;
                 for (const auto& [k, v] : q.params())
                     s += k + "=[" + v + "]\n";
                 seen_remote = std::string(q.remote());
                 r.send(200, "text/plain", s);
             }},
            {"/stream", false,
             [](const Request&, Response& r) {
                 r.start_stream("application/octet-stream");
                 const std::string part(1000, 'x');
                 for (int i = 0; i < 100; ++i)
                     r.write(std::as_bytes(std::span(part)));
                 r.finish();
             }},
        };
    }
    ServerSettings settings(uint32_t timeout_ms = 5000) {
        ServerSettings s;
        s.timeout_ms = timeout_ms;
        s.threads = 2;
        const std::string token = "0123456789abcdef-token";
        s.token.resize(token.size());
        std::memcpy(s.token.data(), token.data(), token.size());
        return s;
    }
    std::string seen_remote;
};

TEST_F(Fixture, ServesRoutesOnAPortItChose) {
    Server srv(settings(), routes(), "test");
    ASSERT_NE(srv.port(), 0);
    EXPECT_EQ(srv.url(), "http://127.0.0.1:" + std::to_string(srv.port()));
    const std::string r = get(srv.port(), "/metrics");
    EXPECT_EQ(status_of(r), 200) << r;
    EXPECT_EQ(body_of(r), "m 1\n");
    EXPECT_NE(r.find("Content-Length: 4"), std::string::npos) << r;
    EXPECT_EQ(srv.counters().requests.get(), 1u);
    EXPECT_EQ(srv.counters().bad_requests.get(), 0u);
}

TEST_F(Fixture, AuthenticatedRoutesNeedTheBearerToken) {
    Server srv(settings(), routes(), "test");
    std::string r = get(srv.port(), "/echo?a=1");
    EXPECT_EQ(status_of(r), 401) << r;
    EXPECT_NE(r.find("WWW-Authenticate: Bearer"), std::string::npos) << r;
    r = get(srv.port(), "/echo?a=1", "Authorization: Bearer wrong-token-wrong-token\r\n");
    EXPECT_EQ(status_of(r), 401) << r;
    r = get(srv.port(), "/echo?a=1", "Authorization: Basic MDEyMzQ1Njc4OWFiY2RlZi10b2tlbg==\r\n");
    EXPECT_EQ(status_of(r), 401) << r;
    r = get(srv.port(), "/echo?filter=host+10.0.0.1%20and%20port%2053&from=1&filter=",
            "Authorization: bearer 0123456789abcdef-token\r\n");
    EXPECT_EQ(status_of(r), 200) << r;
    EXPECT_EQ(body_of(r), "filter=[host 10.0.0.1 and port 53]\nfrom=[1]\nfilter=[]\n");
    EXPECT_EQ(seen_remote.rfind("127.0.0.1:", 0), 0u) << seen_remote;
    EXPECT_EQ(srv.counters().unauthorized.get(), 3u);
    EXPECT_EQ(srv.counters().requests.get(), 4u);
}

TEST_F(Fixture, AnAuthenticatedRouteWithoutAnyAuthenticationIsOff) {
    ServerSettings s = settings();
    s.token.clear();
    Server srv(s, routes(), "test");
    const std::string r = get(srv.port(), "/echo");
    EXPECT_EQ(status_of(r), 403) << r;
    EXPECT_NE(body_of(r).find("needs authentication"), std::string::npos) << r;
    EXPECT_EQ(srv.counters().bad_requests.get(), 1u);
}

TEST_F(Fixture, RefusesWhatIsOutOfBounds) {
    Server srv(settings(), routes(), "test");
    EXPECT_EQ(status_of(get(srv.port(), "/nothing")), 404);
    EXPECT_EQ(status_of(round_trip(srv.port(),
                                   "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: 0\r\n\r\n")),
              405);
    std::string many;
    for (int i = 0; i < kMaxHeaders; ++i)
        many += "X-" + std::to_string(i) + ": y\r\n";
    EXPECT_EQ(status_of(get(srv.port(), "/metrics", many)), 431);
    const std::string huge = "X-Big: " + std::string(kMaxRequestBytes, 'a') + "\r\n";
    const std::string big = get(srv.port(), "/metrics", huge);
    EXPECT_TRUE(status_of(big) == 400 || status_of(big) == 413) << big;
    EXPECT_NE(body_of(big).find("this listener takes a request line and headers of at most 8192 "
                                "bytes, the query string included\n"),
              std::string::npos)
        << big;
    const std::string long_query =
        get(srv.port(), "/metrics?" + std::string(kMaxRequestBytes, 'q'));
    EXPECT_TRUE(status_of(long_query) == 400 || status_of(long_query) == 413) << long_query;
    const std::string auth = "Authorization: Bearer 0123456789abcdef-token\r\n";
    EXPECT_EQ(status_of(get(srv.port(), "/echo?a=%zz", auth)), 400);
    EXPECT_EQ(status_of(get(srv.port(), "/echo?a=%4", auth)), 400);
    // Control bytes, decoded: a line break (log forging), a NUL (a filter
    // cut short), DEL; in a name as in a value.
    for (const char* q : {"/echo?filter=tcp%0Ahost+1.2.3.4", "/echo?filter=tcp%00or+udp",
                          "/echo?filter=%7F", "/echo?fil%09ter=tcp"}) {
        const std::string r = get(srv.port(), q, auth);
        EXPECT_EQ(status_of(r), 400) << q;
        EXPECT_EQ(body_of(r),
                  "the query string holds a control character (%00-%1F or %7F): give printable "
                  "text\n")
            << q;
    }
    EXPECT_EQ(srv.counters().bad_requests.get(), 11u);
    EXPECT_EQ(srv.counters().incomplete.get(), 0u);
}

TEST_F(Fixture, StreamsChunkedToHttp11AndUntilCloseToHttp10) {
    Server srv(settings(), routes(), "test");
    std::string r = get(srv.port(), "/stream");
    ASSERT_EQ(status_of(r), 200) << r.substr(0, 200);
    EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos);
    EXPECT_EQ(dechunk(body_of(r)), std::string(100000, 'x'));
    r = get(srv.port(), "/stream", "", "1.0");
    ASSERT_EQ(status_of(r), 200);
    EXPECT_EQ(r.find("Transfer-Encoding"), std::string::npos);
    EXPECT_EQ(body_of(r), std::string(100000, 'x'));
}

TEST_F(Fixture, SlowAndIdleClientsAreCutAtTheTimeoutAndCounted) {
    Server srv(settings(300), routes(), "test");
    // Idle: connects, sends nothing.
    const int idle = connect_to(srv.port());
    // Slow: a byte of a request at a time, never the end of its headers.
    const int slow = connect_to(srv.port());
    const std::string part = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (char ch : part) {
        if (::send(slow, &ch, 1, MSG_NOSIGNAL) != 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Both are closed by the listener (recv returns), whatever the answer.
    const std::string slow_answer = read_all(slow);
    EXPECT_NE(slow_answer.find("the request did not arrive whole within 300 ms"), std::string::npos)
        << slow_answer;
    read_all(idle);
    // The counters move when civetweb closes the connections: wait for it
    // (no time limit asserted; the test's own timeout bounds it).
    for (int i = 0; i < 500 && srv.counters().incomplete.get() < 2; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(srv.counters().incomplete.get(), 2u)
        << srv.counters().bad_requests.get() << " " << srv.counters().requests.get();
    EXPECT_EQ(srv.counters().bad_requests.get(), 0u);
    // And an honest request is served after them.
    EXPECT_EQ(status_of(get(srv.port(), "/metrics")), 200);
}

TEST_F(Fixture, AnAddressInUseIsAnErrorNamingTheOption) {
    Server a(settings(), routes(), "test");
    ServerSettings s = settings();
    s.listen.port = a.port();
    try {
        Server b(s, routes(), "--metrics");
        FAIL() << "a second server on the same port";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("--metrics: cannot listen on"), std::string::npos)
            << e.what();
    }
}

TEST_F(Fixture, TlsFilesAreCheckedAtStart) {
    ServerSettings s = settings();
    s.tls_cert = "/nonexistent/cert.pem";
    EXPECT_THROW(Server(s, routes(), "test"), std::invalid_argument);
    s.tls_key = "/nonexistent/key.pem";
    try {
        Server srv(s, routes(), "--metrics");
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/cert.pem"), std::string::npos)
            << e.what();
    }
    ServerSettings c = settings();
    c.tls_ca = "/nonexistent/ca.pem";
    EXPECT_THROW(Server(c, routes(), "test"), std::invalid_argument);
}

}  // namespace
}  // namespace sluice::http
