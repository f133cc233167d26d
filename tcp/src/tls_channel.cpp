// TLS 1.3 for the TCP transport: the byte channel (tls_channel.hpp) over one
// socket, in user space or handed to the kernel (kTLS). Every failure becomes
// a sentence that names what to change.
#include "tls_channel.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/tls.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include "sluice/tcp/protocol.hpp"
namespace sluice::tcp {
namespace {

constexpr unsigned char kTlsHandshakeRecord = 0x16;
constexpr unsigned char kTlsAlertRecord = 21;
constexpr unsigned char kTlsApplicationData = 23;
constexpr std::size_t kRecordPlain = 16384;  // TLS 1.3 record payload, at most
constexpr std::size_t kRecordOverhead = 64;  // header, content type, tag: 22 bytes, and room
constexpr std::size_t kBufferSlack = 512;    // never let OpenSSL find the buffer full

bool is_ip_address(const std::string& s) {
    unsigned char buf[16];
    return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// The user-space sending buffer as a BIO: OpenSSL's records land in the
// channel's buffer, which the channel sends as the socket takes them.
int buffer_bio_write(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    auto* ch = static_cast<TlsChannel*>(BIO_get_data(b));
    if (ch->buffer_write(data, len)) return len;
    BIO_set_retry_write(b);  // never happens: writes are sized to fit
    return -1;
}

long buffer_bio_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

BIO_METHOD* buffer_bio_method() {
    static BIO_METHOD* const m = [] {
        BIO_METHOD* bm =
            BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice tls buffer");
        BIO_meth_set_write(bm, buffer_bio_write);
        BIO_meth_set_ctrl(bm, buffer_bio_ctrl);
        return bm;
    }();
    return m;
}

std::string alert_name(int desc) {
    return SSL_alert_desc_string_long(desc);
}

}  // namespace

// ---- TlsChannel ------------------------------------------------------------------

TlsChannel::TlsChannel(const TlsContext& ctx, int fd, std::string_view verify_name,
                       std::size_t out_bytes)
    : ctx_(ctx),
      fd_(fd),
      out_(std::make_unique_for_overwrite<std::byte[]>(out_bytes)),
      out_cap_(out_bytes) {
    ssl_ = SSL_new(ctx.get());
    out_bio_ = BIO_new(buffer_bio_method());
    if (!ssl_ || !out_bio_) {
        SSL_free(ssl_);
        BIO_free(out_bio_);
        throw std::runtime_error("OpenSSL cannot set up a TLS connection: " + tls_openssl_error());
    }
    BIO_set_data(out_bio_, this);
    BIO_set_init(out_bio_, 1);
    SSL_set_ex_data(ssl_, tls_channel_index(), this);
    if (ctx.kernel()) {
        // Socket BIOs both ways: OpenSSL hands the record layer to the
        // kernel when the handshake ends, where it can.
        SSL_set_fd(ssl_, fd);
    } else {
        SSL_set_bio(ssl_, BIO_new_socket(fd, BIO_NOCLOSE), out_bio_);
        out_bio_ = nullptr;  // the SSL's now
        SSL_set_read_ahead(ssl_, 1);
    }
    if (ctx.role() == TlsRole::Client) {
        const std::string name(verify_name);
        if (is_ip_address(name)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
        } else {
            SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(ssl_, name.c_str());
            SSL_set_tlsext_host_name(ssl_, name.c_str());
        }
        SSL_set_connect_state(ssl_);
    } else {
        SSL_set_accept_state(ssl_);
    }
}

TlsChannel::~TlsChannel() {
    SSL_free(ssl_);
    BIO_free(out_bio_);  // when never handed to the SSL
}

bool TlsChannel::buffer_write(const char* data, int len) {
    const auto n = static_cast<std::size_t>(len);
    if (len < 0 || out_cap_ - out_len_ < n) return false;
    std::memcpy(out_.get() + out_len_, data, n);
    out_len_ += n;
    return true;
}

bool TlsChannel::wants_write() const {
    return backlog() || want_write_;
}

bool TlsChannel::pending() const {
    return !kernel_recv_ && (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1);
}

const char* TlsChannel::error_text(int err) const {
    if (failure_ == Failure::None || failure_ == Failure::Io) return std::strerror(err);
    return error_.c_str();
}

TlsChannel::Progress TlsChannel::fail(Failure f, std::string text) {
    if (failure_ == Failure::None) {
        failure_ = f;
        error_ = std::move(text);
    }
    ERR_clear_error();
    return Progress::Failed;
}

bool TlsChannel::flush() {
    while (out_off_ < out_len_) {
        const ssize_t n =
            ::send(fd_, out_.get() + out_off_, out_len_ - out_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EWOULDBLOCK) errno = EAGAIN;
            if (errno != EAGAIN) {
                const int e = errno;
                fail(Failure::Io, std::strerror(e));
                errno = e;
            }
            return false;
        }
        out_off_ += static_cast<std::size_t>(n);
    }
    out_off_ = out_len_ = 0;
    return true;
}

TlsChannel::Progress TlsChannel::handshake() {
    if (established_) return Progress::Done;
    if (failure_ != Failure::None) return Progress::Failed;
    want_write_ = false;
    if (!flush()) {
        return errno == EAGAIN ? Progress::Again : Progress::Failed;
    }
    const bool client = ctx_.role() == TlsRole::Client;
    // Before TLS: what does the peer speak? A collector without TLS sends
    // its CHALLENGE at once; a sender with TLS sends a ClientHello at once.
    if (!started_) {
        unsigned char first = 0;
        const ssize_t n = ::recv(fd_, &first, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            const int e = errno;
            fail(Failure::Io, std::strerror(e));
            errno = e;
            return Progress::Failed;
        }
        if (n == 0 && !client) {
            errno = 0;
            return fail(Failure::Io, "the peer closed the connection before any TLS handshake");
        }
        // A client's first call sends its ClientHello before anything else
        // (so a collector without TLS sees and counts it) unless the
        // collector already refused in plaintext (busy).
        const bool hello_first = client && SSL_in_before(ssl_) == 1 && !plaintext_reject();
        if (n > 0 && first == 'S' && !hello_first) {
            return fail(Failure::Plaintext,
                        client ? plaintext_collector()
                               : std::string("the sender speaks sluice without TLS and this "
                                             "collector requires TLS (--tls-cert): give the sender "
                                             "egress.tls_ca (sluice-send --tls-ca)"));
        }
        if (n > 0 && !client && first != kTlsHandshakeRecord) {
            return fail(Failure::NotTls,
                        "the peer's first bytes are not a TLS handshake and this collector "
                        "requires TLS: something other than a sluice sender connects to this port");
        }
        if (n > 0 && first != 'S') started_ = true;
        if (n < 0 && !client) return Progress::Again;
    }
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    const int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    if (!flush() && errno != EAGAIN) return Progress::Failed;
    if (r == 1) return after_handshake();
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        want_write_ = err == SSL_ERROR_WANT_WRITE;
        return Progress::Again;
    }
    describe_failure(err);
    return Progress::Failed;
}

bool TlsChannel::plaintext_reject() const {
    std::array<std::byte, kMaxMessageSize> buf;
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0) return false;
    const ParsedMessage m = parse_message({buf.data(), static_cast<std::size_t>(n)});
    return m.status == MessageStatus::Ok && m.header.type == MessageType::Reject;
}

TlsChannel::Progress TlsChannel::after_handshake() {
    established_ = started_ = true;
    if (ctx_.kernel()) {
        kernel_send_ = BIO_get_ktls_send(SSL_get_wbio(ssl_)) != 0;
        kernel_recv_ = BIO_get_ktls_recv(SSL_get_rbio(ssl_)) != 0;
        if (!kernel_send_ && out_bio_) {
            SSL_set0_wbio(ssl_, out_bio_);  // user-space sending through the buffer
            out_bio_ = nullptr;
        }
        if (!kernel_recv_) SSL_set_read_ahead(ssl_, 1);
    }
    return Progress::Done;
}

std::string TlsChannel::explain_alert(int alert) const {
    const bool client = ctx_.role() == TlsRole::Client;
    const TlsNames& n = ctx_.settings().names;
    const std::string_view peer = client ? "the collector" : "the sender";
    switch (alert) {
        case SSL_AD_CERTIFICATE_REQUIRED:
            return client ? fmt::format(
                                "the collector requires a client certificate (it runs "
                                "with --tls-ca): set {} and {}",
                                n.cert, n.key)
                          : std::string("the sender requires a certificate");
        case SSL_AD_UNKNOWN_CA:
        case SSL_AD_BAD_CERTIFICATE:
        case SSL_AD_CERTIFICATE_UNKNOWN:
        case SSL_AD_UNSUPPORTED_CERTIFICATE:
        case SSL_AD_DECRYPT_ERROR:
            return client ? fmt::format(
                                "the collector refused this sender's certificate ({}): "
                                "it is not signed by the collector's --tls-ca",
                                n.cert)
                          : fmt::format(
                                "the sender does not trust this collector's certificate "
                                "({}): give the sender's egress.tls_ca the CA that "
                                "signed it",
                                n.cert);
        case SSL_AD_CERTIFICATE_EXPIRED:
            return fmt::format("{} says this end's certificate ({}) has expired: renew it", peer,
                               n.cert);
        case SSL_AD_PROTOCOL_VERSION:
        case SSL_AD_HANDSHAKE_FAILURE:
        case SSL_AD_INSUFFICIENT_SECURITY:
            return fmt::format(
                "{} refused the TLS handshake ({}): both ends need TLS 1.3; run "
                "the same sluice release on both",
                peer, alert_name(alert));
        default:
            return fmt::format("{} ended TLS with the alert \"{}\"", peer, alert_name(alert));
    }
}

std::string TlsChannel::plaintext_collector() const {
    return fmt::format(
        "the collector answered without TLS: start sluice-collector with "
        "--tls-cert and --tls-key, or remove {} to send without TLS",
        ctx_.settings().names.ca);
}

void TlsChannel::describe_failure(int ssl_error) {
    const bool client = ctx_.role() == TlsRole::Client;
    const TlsNames& n = ctx_.settings().names;
    const std::string_view peer = client ? "the collector" : "the sender";
    if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        const int e = errno;
        if (e == 0) {
            fail(Failure::Handshake,
                 fmt::format("{} closed the connection during the TLS handshake (see its log: "
                             "it may refuse this end's certificate)",
                             peer));
        } else {
            fail(Failure::Io, std::strerror(e));
        }
        errno = e ? e : EPROTO;
        return;
    }
    // The first SSL error says what happened; later ones repeat it.
    unsigned long code = 0;
    for (unsigned long e; (e = ERR_get_error()) != 0;)
        if (!code && ERR_GET_LIB(e) == ERR_LIB_SSL) code = e;
    const int reason = code ? ERR_GET_REASON(code) : 0;
    const long verified = SSL_get_verify_result(ssl_);
    const std::string note = cert_note_.empty() ? std::string() : " (" + cert_note_ + ")";
    std::string why;
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verified != X509_V_OK) {
        switch (verified) {
            case X509_V_ERR_HOSTNAME_MISMATCH:
            case X509_V_ERR_IP_ADDRESS_MISMATCH:
                why = fmt::format(
                    "the collector's certificate is not for the name this sender checks{}: set {} "
                    "to a name it carries, or reissue the certificate for that name",
                    note, n.server_name);
                break;
            case X509_V_ERR_CERT_HAS_EXPIRED:
                why = fmt::format(
                    "{}'s certificate has expired{}: renew it ({})", peer, note,
                    client ? "the collector's --tls-cert" : "the sender's egress.tls_cert");
                break;
            case X509_V_ERR_CERT_NOT_YET_VALID:
                why = fmt::format("{}'s certificate is not valid yet{}: check both clocks", peer,
                                  note);
                break;
            case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
            case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
            case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
            case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
            case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            case X509_V_ERR_CERT_SIGNATURE_FAILURE:
                why = client ? fmt::format(
                                   "the collector's certificate is not signed by the CA "
                                   "in {}{}: give {} the CA that signed the collector's "
                                   "--tls-cert",
                                   n.ca, note, n.ca)
                             : fmt::format(
                                   "the sender's certificate is not signed by the CA in "
                                   "{}{}: sign the sender's egress.tls_cert with that CA",
                                   n.ca, note);
                break;
            default:
                why = fmt::format("{}'s certificate failed verification: {}{}", peer,
                                  X509_verify_cert_error_string(verified), note);
                break;
        }
    } else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        why = fmt::format(
            "the sender presented no certificate and {} requires one: give the sender "
            "egress.tls_cert and egress.tls_key (sluice-send --tls-cert, --tls-key) signed by "
            "that CA",
            n.ca);
    } else if (reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
        why = explain_alert(reason - SSL_AD_REASON_OFFSET);
    } else if (client && !started_ &&
               (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG)) {
        // The collector's first bytes came between the peek and OpenSSL's
        // read: not TLS, so a collector without it.
        fail(Failure::Plaintext, plaintext_collector());
        errno = EPROTO;
        return;
    } else if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
               reason == SSL_R_VERSION_TOO_LOW || reason == SSL_R_WRONG_VERSION_NUMBER) {
        why = fmt::format(
            "{} does not speak TLS 1.3 ({}): run the same sluice release on both "
            "ends",
            peer, ERR_reason_error_string(code));
    } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        why = fmt::format("{} closed the connection during the TLS handshake (see its log)", peer);
    } else {
        why = fmt::format("TLS with {} failed: {}", peer,
                          code ? ERR_reason_error_string(code) : "unknown error");
    }
    fail(Failure::Handshake, std::move(why));
    errno = EPROTO;
}

ssize_t TlsChannel::kernel_recvmsg(void* buf, std::size_t len) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(unsigned char))];
    iovec v{buf, len};
    msghdr m{};
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_, &m, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EIO || errno == EBADMSG || errno == EMSGSIZE) {
            fail(Failure::Handshake,
                 "a TLS record failed decryption in the kernel: the connection is corrupted");
            errno = EPROTO;
        }
        return n;
    }
    const cmsghdr* c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_level != SOL_TLS || c->cmsg_type != TLS_GET_RECORD_TYPE) return n;
    const unsigned char type = *CMSG_DATA(c);
    if (type == kTlsApplicationData) return n;
    const auto* b = static_cast<const unsigned char*>(buf);
    if (type == kTlsAlertRecord && n >= 2) {
        if (b[1] == SSL_AD_CLOSE_NOTIFY) return 0;
        fail(Failure::Handshake, explain_alert(b[1]));
        errno = EPROTO;
        return -1;
    }
    fail(Failure::Handshake,
         fmt::format("the peer sent a TLS record of type {} that kernel TLS cannot pass on",
                     static_cast<int>(type)));
    errno = EPROTO;
    return -1;
}

ssize_t TlsChannel::recv(void* buf, std::size_t len) {
    if (failure_ != Failure::None) {
        errno = EPROTO;
        return -1;
    }
    if (kernel_recv_) return kernel_recvmsg(buf, len);
    auto* p = static_cast<std::byte*>(buf);
    std::size_t got = 0;
    // As much as is there, as recv() would: one SSL_read returns one record.
    while (got < len) {
        std::size_t n = 0;
        ERR_clear_error();
        if (SSL_read_ex(ssl_, p + got, len - got, &n) == 1) {
            got += n;
            continue;
        }
        const int e = SSL_get_error(ssl_, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (got) break;
            errno = EAGAIN;
            return -1;
        }
        if (e == SSL_ERROR_ZERO_RETURN) break;  // the peer closed (0 when nothing came before)
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) break;
        // A failure after data: the data first, the failure on the next call.
        describe_failure(e);
        if (got) break;
        if (failure_ == Failure::Io) return -1;  // errno from the socket
        errno = EPROTO;
        return -1;
    }
    return static_cast<ssize_t>(got);
}

std::size_t TlsChannel::plaintext_room() const {
    std::size_t free = out_cap_ - out_len_;
    if (free <= kRecordOverhead + kBufferSlack) return 0;
    free -= kBufferSlack;
    const std::size_t records = free / (kRecordPlain + kRecordOverhead);
    return records ? records * kRecordPlain : free - kRecordOverhead;
}

ssize_t TlsChannel::send(const void* buf, std::size_t len) {
    const iovec v{const_cast<void*>(buf), len};
    return sendv(&v, 1);
}

ssize_t TlsChannel::sendv(const struct iovec* iov, int count) {
    if (kernel_send_) {
        msghdr m{};
        m.msg_iov = const_cast<iovec*>(iov);
        m.msg_iovlen = static_cast<std::size_t>(count);
        return ::sendmsg(fd_, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (failure_ != Failure::None || !established_) {
        errno = failure_ == Failure::None ? ENOTCONN : EPROTO;
        return -1;
    }
    if (!flush() && errno != EAGAIN) return -1;
    if (out_off_ == out_len_) out_off_ = out_len_ = 0;
    std::size_t taken = 0;
    bool stop = false;
    for (int i = 0; i < count && !stop; ++i) {
        const auto* p = static_cast<const std::byte*>(iov[i].iov_base);
        std::size_t left = iov[i].iov_len;
        while (left > 0) {
            const std::size_t chunk = std::min(left, plaintext_room());
            if (chunk == 0) {
                stop = true;  // the buffer is full: the rest waits for the socket
                break;
            }
            std::size_t w = 0;
            ERR_clear_error();
            if (SSL_write_ex(ssl_, p, chunk, &w) != 1 || w != chunk) {
                describe_failure(SSL_get_error(ssl_, 0));
                if (!taken) {
                    errno = EPROTO;
                    return -1;
                }
                stop = true;
                break;
            }
            taken += chunk;
            p += chunk;
            left -= chunk;
        }
    }
    if (!flush() && errno != EAGAIN && !taken) return -1;
    if (!taken) {
        errno = EAGAIN;
        return -1;
    }
    return static_cast<ssize_t>(taken);
}

}  // namespace sluice::tcp
