// Addresses as operators write them, the same in the config file
// (egress.address), on sluice-send's --to and on sluice-collector's --listen:
//
//   HOST:PORT  [IPV6]:PORT  tcp://HOST:PORT  rdma://HOST:PORT  tcp://[IPV6]:PORT ...
//
// Without a scheme the transport is the caller's default. Resolution and the
// loopback test are here too: both transports resolve the same way.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <sys/socket.h>

#include "sluice/report/result.hpp"

namespace sluice::session {

enum class Transport : uint8_t { Tcp, Rdma };
std::string_view to_string(Transport t);  // "tcp", "rdma"

struct Endpoint {
    std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
    uint16_t port = 0;
    Transport transport = Transport::Tcp;
    bool scheme_given = false;  // the text named the transport ("rdma://...")

    std::string to_string() const;  // "host:port" or "[v6]:port"
    std::string url() const;        // "tcp://host:port"
};

// An error (its message names the text and the fix) for anything else: no
// port, port 0 or above 65535, empty host, unbalanced brackets, an unknown
// scheme. `default_transport` applies when the text names none.
report::Result<Endpoint> parse_endpoint(std::string_view text,
                                        Transport default_transport = Transport::Tcp);

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

// ---- NATS servers (a JetStream cluster, docs/scale-out.md) ---------------------
//
//   jetstream://HOST:PORT[,HOST:PORT...]    sluice-send --to, sluice-collector --source
//   HOST:PORT  HOST  nats://HOST:PORT  tls://HOST:PORT  [V6]:PORT    each entry of egress.urls
//
// Every form becomes the URL the NATS client takes ("nats://HOST:PORT"; port
// 4222 when none is given). Any one reachable server is enough: the client
// learns the rest of the cluster from it.
inline constexpr std::string_view kJetStreamScheme = "jetstream://";
inline constexpr uint16_t kNatsPort = 4222;
bool is_jetstream_url(std::string_view text);
report::Result<std::string> nats_server_url(std::string_view entry);
// "jetstream://a:4222,b:4222" (or the list without the scheme) -> URLs.
report::Result<std::vector<std::string>> parse_nats_servers(std::string_view text);

}  // namespace sluice::session
