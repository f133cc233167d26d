// TLS 1.3 under the TCP transport (docs/wire-protocol.md, "Stream
// transport"): what each end configures, the check of its files, and the
// counters. The sluice messages inside are unchanged; TLS only carries them.
// The byte channel itself (OpenSSL over the non-blocking socket, with the
// record layer in the kernel when it has kernel TLS) is private to tcp/.
#pragma once

#include <cstdint>
#include <string>

#include "sluice/lockfree/counter.hpp"

namespace sluice::tcp {

// How a program calls its TLS settings, for messages that say what to change.
struct TlsNames {
    std::string ca = "egress.tls_ca";
    std::string cert = "egress.tls_cert";
    std::string key = "egress.tls_key";
    std::string server_name = "egress.tls_server_name";
};

// Files are PEM. Sender (client): TLS is on when `ca` is set; the
// collector's certificate must be signed by it and name `server_name`
// (empty: the collector's host, a DNS name or an IP address). `cert` and
// `key` are the client certificate a collector started with --tls-ca asks
// for. Collector (server): TLS is on when `cert` is set (with `key`); with
// `ca`, every sender must present a certificate signed by it.
struct TlsSettings {
    std::string ca, cert, key;
    std::string server_name;
    // Kernel TLS (the kernel encrypts and decrypts after the handshake) when
    // the kernel offers it; user-space TLS otherwise. SLUICE_KTLS=0 in the
    // environment turns it off for every connection of the process.
    bool kernel = true;
    TlsNames names;
};

enum class TlsRole : uint8_t { Client, Server };

// Whether `s` turns TLS on for `role` (see TlsSettings).
bool tls_enabled(const TlsSettings& s, TlsRole role);

// Reads and checks the files of `s` for `role`: each readable and PEM, the
// key not encrypted and matching the certificate, every certificate valid
// today. Throws std::invalid_argument: one line naming the setting, the file
// and the fix. TcpSender and TcpListener check the same when constructed.
void check_tls_files(const TlsSettings& s, TlsRole role);

// Per end: the sender's in its "tcp" counters, the listener's in tls_stats().
#define SLUICE_TLS_COUNTERS(_)                                                              \
    _(tls_handshakes, "TLS handshakes completed.")                                          \
    _(tls_kernel_send,                                                                      \
      "TLS connections whose sending the kernel encrypts (kernel TLS): frames go out "      \
      "with writev as without TLS.")                                                        \
    _(tls_kernel_recv, "TLS connections whose receiving the kernel decrypts (kernel TLS).") \
    _(tls_user_space,                                                                       \
      "TLS connections with at least one direction in user space (OpenSSL): the "           \
      "kernel has no TLS (modprobe tls), lacks the cipher, or SLUICE_KTLS=0 is set.")       \
    _(tls_failures,                                                                         \
      "TLS handshakes or TLS connections that failed: certificate not trusted or "          \
      "expired, wrong name, no client certificate, a peer without TLS. The log (or "        \
      "last_error) says which and what to change.")
SLUICE_COUNTER_BLOCK(TlsCounters, SLUICE_TLS_COUNTERS);

}  // namespace sluice::tcp
