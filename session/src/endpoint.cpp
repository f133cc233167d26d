#include "sluice/session/endpoint.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>

namespace sluice::session {

std::string_view to_string(Transport t) {
    return t == Transport::Rdma ? "rdma" : "tcp";
}

std::string Endpoint::to_string() const {
    return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                               : fmt::format("{}:{}", host, port);
}

std::string Endpoint::url() const {
    return fmt::format("{}://{}", session::to_string(transport), to_string());
}

report::Result<Endpoint> parse_endpoint(std::string_view t, Transport default_transport) {
    const std::string original(t);
    auto fail = [&](std::string_view why) -> report::Result<Endpoint> {
        return report::Error{EINVAL, fmt::format("'{}': {}", original, why)};
    };
    Endpoint e;
    e.transport = default_transport;
    if (const auto s = t.find("://"); s != std::string_view::npos) {
        const std::string_view scheme = t.substr(0, s);
        if (scheme == "tcp") {
            e.transport = Transport::Tcp;
        } else if (scheme == "rdma") {
            e.transport = Transport::Rdma;
        } else {
            return fail(fmt::format(
                "unknown scheme '{}://': write tcp://HOST:PORT or rdma://HOST:PORT", scheme));
        }
        e.scheme_given = true;
        t.remove_prefix(s + 3);
    }
    std::string_view port;
    if (!t.empty() && t.front() == '[') {
        const auto close = t.find(']');
        if (close == std::string_view::npos || close + 1 >= t.size() || t[close + 1] != ':')
            return fail("write an IPv6 address as [ADDRESS]:PORT");
        e.host = std::string(t.substr(1, close - 1));
        port = t.substr(close + 2);
    } else {
        const auto colon = t.rfind(':');
        if (colon == std::string_view::npos)
            return fail("no port; write HOST:PORT, e.g. 127.0.0.1:7700");
        e.host = std::string(t.substr(0, colon));
        if (e.host.find(':') != std::string::npos)
            return fail("write an IPv6 address as [ADDRESS]:PORT");
        port = t.substr(colon + 1);
    }
    if (e.host.empty()) return fail("empty host; write HOST:PORT, e.g. 127.0.0.1:7700");
    unsigned v = 0;
    const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535)
        return fail("the port must be a number from 1 to 65535");
    e.port = static_cast<uint16_t>(v);
    return e;
}

ResolvedAddress resolve(const Endpoint& e, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* res = nullptr;
    const std::string port = std::to_string(e.port);
    const int rc = ::getaddrinfo(e.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res) {
        throw std::runtime_error(
            fmt::format("cannot resolve '{}': {}; check the name or use an address", e.host,
                        ::gai_strerror(rc)));
    }
    ResolvedAddress r;
    std::memcpy(&r.addr, res->ai_addr, res->ai_addrlen);
    r.len = res->ai_addrlen;
    r.family = res->ai_family;
    ::freeaddrinfo(res);
    return r;
}

bool is_loopback(const ResolvedAddress& a) {
    if (a.family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&a.addr);
        return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
    }
    if (a.family == AF_INET6) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(&a.addr);
        if (IN6_IS_ADDR_LOOPBACK(&s->sin6_addr)) return true;
        return IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) && s->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

std::string format_address(const sockaddr* sa, socklen_t len) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(sa);
        ::inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        return fmt::format("{}:{}", host, ntohs(s->sin_port));
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(sa);
        ::inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        return fmt::format("[{}]:{}", host, ntohs(s->sin6_port));
    }
    return "?";
}

bool is_jetstream_url(std::string_view text) {
    return text.substr(0, kJetStreamScheme.size()) == kJetStreamScheme;
}

report::Result<std::string> nats_server_url(std::string_view entry) {
    std::string_view scheme = "nats://";
    std::string_view rest = entry;
    for (std::string_view s : {std::string_view("nats://"), std::string_view("tls://")}) {
        if (rest.substr(0, s.size()) == s) {
            scheme = s;
            rest.remove_prefix(s.size());
        }
    }
    if (rest.find("://") != std::string_view::npos) {
        return report::Error{EINVAL, fmt::format("'{}': a NATS server is HOST:PORT, "
                                                 "nats://HOST:PORT or tls://HOST:PORT",
                                                 entry)};
    }
    std::string text(rest);
    // A bare host (or [v6]) takes NATS's port.
    const bool bracketed = !text.empty() && text.front() == '[';
    if ((bracketed && text.back() == ']') ||
        (!bracketed && !text.empty() && text.find(':') == std::string::npos))
        text += fmt::format(":{}", kNatsPort);
    const auto e = parse_endpoint(text);
    if (!e) return report::Error{EINVAL, fmt::format("'{}': {}", entry, e.error().message)};
    return fmt::format("{}{}", scheme, e->to_string());
}

report::Result<std::vector<std::string>> parse_nats_servers(std::string_view text) {
    if (is_jetstream_url(text)) text.remove_prefix(kJetStreamScheme.size());
    std::vector<std::string> urls;
    while (true) {
        const auto comma = text.find(',');
        const std::string_view one = text.substr(0, comma);
        if (one.empty()) {
            return report::Error{
                EINVAL, "an empty server in the list: write jetstream://HOST:PORT[,HOST:PORT...]"};
        }
        auto url = nats_server_url(one);
        if (!url) return url.error();
        urls.push_back(std::move(*url));
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return urls;
}

}  // namespace sluice::session
