// Addresses as operators write them: "host:port", "[v6]:port", with or
// without a "tcp://" prefix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <sys/socket.h>

namespace sluice::tcp {

struct Endpoint {
    std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
    uint16_t port = 0;

    std::string to_string() const;  // "host:port" or "[v6]:port"
};

// nullopt and a message in `error` for anything else (no port, port 0 or
// above 65535, empty host, unbalanced brackets, another scheme).
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error = nullptr);

struct ResolvedAddress {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = 0;
};

// getaddrinfo (may block on DNS: control path only). Throws
// std::runtime_error naming the host and the resolver's message.
ResolvedAddress resolve(const Endpoint& e, bool passive = false);

// True for 127.0.0.0/8 and ::1 (and ::ffff:127.x.y.z).
bool is_loopback(const ResolvedAddress& a);

// "127.0.0.1:7700" / "[::1]:7700" for logs.
std::string format_address(const sockaddr* sa, socklen_t len);

}  // namespace sluice::tcp
