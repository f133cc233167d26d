// TLS 1.3 for the TCP transport: the files' checks, the contexts, and the
// byte channel (tls_channel.hpp). Every failure becomes a sentence that
// names what to change, at both ends.
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

#include "tls_channel.hpp"
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

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

constexpr unsigned char kTlsHandshakeRecord = 0x16;
constexpr unsigned char kTlsAlertRecord = 21;
constexpr unsigned char kTlsApplicationData = 23;
constexpr std::size_t kRecordPlain = 16384;  // TLS 1.3 record payload, at most
constexpr std::size_t kRecordOverhead = 64;  // header, content type, tag: 22 bytes, and room
constexpr std::size_t kBufferSlack = 512;    // never let OpenSSL find the buffer full
// User-space receiving reads ahead this much per recv(): fewer system calls
// than one per record.
constexpr long kReadBufferBytes = 64 * 1024;
// AES-128-GCM first (the cheapest where AES-NI is, as kernel TLS has it
// too), then the other TLS 1.3 suites.
constexpr const char* kCipherSuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

std::string openssl_error() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown error" : out;
}

std::string date_of(const ASN1_TIME* t) {
    std::tm tm{};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return "an unreadable date";
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02} UTC", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min);
}

std::string common_name(const X509_NAME* n) {
    char buf[128] = {};
    if (n && X509_NAME_get_text_by_NID(n, NID_commonName, buf, sizeof buf) > 0)
        return fmt::format("CN={}", buf);
    return "no CN";
}

// "DNS:a, IP:127.0.0.1" (at most a few, for one line).
std::string names_of(X509* x) {
    std::string out;
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
    const int n = sans ? sk_GENERAL_NAME_num(sans) : 0;
    for (int i = 0; i < n && i < 4; ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
        std::string one;
        if (g->type == GEN_DNS) {
            const auto* s = g->d.dNSName;
            one = "DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                       static_cast<std::size_t>(ASN1_STRING_length(s)));
        } else if (g->type == GEN_IPADD) {
            const auto* s = g->d.iPAddress;
            char text[INET6_ADDRSTRLEN] = {};
            const int len = ASN1_STRING_length(s);
            if (len == 4 || len == 16)
                ::inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text,
                            sizeof text);
            one = std::string("IP:") + text;
        }
        if (one.empty()) continue;
        if (!out.empty()) out += ", ";
        out += one;
    }
    GENERAL_NAMES_free(sans);
    return out.empty() ? "no DNS or IP names, " + common_name(X509_get_subject_name(x)) : out;
}

std::string read_file(const std::string& setting, const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::invalid_argument(
            fmt::format("{} {}: cannot read it ({}): check the path and its permissions", setting,
                        path, std::strerror(errno)));
    }
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<X509Ptr> read_certificates(const std::string& setting, const std::string& path) {
    const std::string text = read_file(setting, path);
    BioPtr b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    std::vector<X509Ptr> out;
    while (X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr))
        out.emplace_back(x);
    ERR_clear_error();  // the end of the file reads as an error
    if (out.empty()) {
        throw std::invalid_argument(
            fmt::format("{} {}: no PEM certificate in it (expected a -----BEGIN CERTIFICATE----- "
                        "block): give the certificate file, not the key or a DER file",
                        setting, path));
    }
    return out;
}

// Valid today, or the sentence saying why not.
std::string validity_problem(X509* x) {
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        return fmt::format("expired on {}: renew it", date_of(X509_get0_notAfter(x)));
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
        return fmt::format("is valid only from {}: check this host's clock",
                           date_of(X509_get0_notBefore(x)));
    return {};
}

int no_passphrase(char*, int, int, void*) {
    return -1;
}

PkeyPtr read_key(const std::string& setting, const std::string& path) {
    const std::string text = read_file(setting, path);
    BioPtr b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    PkeyPtr k(PEM_read_bio_PrivateKey(b.get(), nullptr, no_passphrase, nullptr));
    ERR_clear_error();
    if (k) return k;
    if (text.find("ENCRYPTED") != std::string::npos) {
        throw std::invalid_argument(fmt::format(
            "{} {}: the key is encrypted and sluice asks for no passphrase: decrypt it (openssl "
            "pkey -in {} -out NEW) and protect NEW with chmod 600",
            setting, path, path));
    }
    throw std::invalid_argument(
        fmt::format("{} {}: no PEM private key in it (expected a -----BEGIN PRIVATE KEY----- "
                    "block): give the certificate's key file",
                    setting, path));
}

bool is_ip_address(const std::string& s) {
    unsigned char buf[16];
    return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

int channel_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// Remembers, for the failure's message, what was wrong with the certificate
// that failed verification.
int verify_callback(int ok, X509_STORE_CTX* st) {
    if (ok) return ok;
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* ch = ssl ? static_cast<TlsChannel*>(SSL_get_ex_data(ssl, channel_index())) : nullptr;
    X509* x = X509_STORE_CTX_get_current_cert(st);
    if (!ch || !x) return ok;
    switch (X509_STORE_CTX_get_error(st)) {
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            ch->note_certificate("it names " + names_of(x));
            break;
        case X509_V_ERR_CERT_HAS_EXPIRED:
            ch->note_certificate("expired on " + date_of(X509_get0_notAfter(x)));
            break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
            ch->note_certificate("valid only from " + date_of(X509_get0_notBefore(x)));
            break;
        default:
            ch->note_certificate(fmt::format("{}, issued by {}",
                                             common_name(X509_get_subject_name(x)),
                                             common_name(X509_get_issuer_name(x))));
            break;
    }
    return ok;
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

bool tls_enabled(const TlsSettings& s, TlsRole role) {
    return role == TlsRole::Client ? !s.ca.empty() : !s.cert.empty();
}

void check_tls_files(const TlsSettings& s, TlsRole role) {
    const TlsNames& n = s.names;
    if (!s.cert.empty() && s.key.empty())
        throw std::invalid_argument(
            fmt::format("{} needs {}: the certificate's private key", n.cert, n.key));
    if (s.cert.empty() && !s.key.empty())
        throw std::invalid_argument(
            fmt::format("{} needs {}: the certificate the key belongs to", n.key, n.cert));
    if (!tls_enabled(s, role)) {
        if (role == TlsRole::Client && (!s.cert.empty() || !s.server_name.empty())) {
            throw std::invalid_argument(fmt::format(
                "{} needs {}: TLS is on only with the CA that signed the collector's certificate",
                s.cert.empty() ? n.server_name : n.cert, n.ca));
        }
        if (role == TlsRole::Server && !s.ca.empty()) {
            throw std::invalid_argument(
                fmt::format("{} needs {} and {}: the collector's own certificate and key", n.ca,
                            n.cert, n.key));
        }
        return;
    }
    if (!s.cert.empty()) {
        const auto certs = read_certificates(n.cert, s.cert);
        if (const auto p = validity_problem(certs.front().get()); !p.empty())
            throw std::invalid_argument(
                fmt::format("{} {}: the certificate {}", n.cert, s.cert, p));
        const PkeyPtr key = read_key(n.key, s.key);
        if (X509_check_private_key(certs.front().get(), key.get()) != 1) {
            ERR_clear_error();
            throw std::invalid_argument(fmt::format(
                "{} {} does not match the certificate in {} {}: give the key that certificate was "
                "issued for",
                n.key, s.key, n.cert, s.cert));
        }
    }
    if (!s.ca.empty()) {
        const auto cas = read_certificates(n.ca, s.ca);
        std::string problem;
        for (const auto& c : cas) {
            problem = validity_problem(c.get());
            if (problem.empty()) break;
        }
        if (!problem.empty()) {
            throw std::invalid_argument(
                fmt::format("{} {}: the CA certificate {} {}", n.ca, s.ca,
                            common_name(X509_get_subject_name(cas.front().get())), problem));
        }
    }
}

// ---- TlsContext ------------------------------------------------------------------

TlsContext::TlsContext(const TlsSettings& s, TlsRole role) : s_(s), role_(role) {
    check_tls_files(s_, role_);
    const char* env = std::getenv("SLUICE_KTLS");
    kernel_ = s_.kernel && !(env && std::string_view(env) == "0");
    ctx_ = SSL_CTX_new(role == TlsRole::Client ? TLS_client_method() : TLS_server_method());
    if (!ctx_) throw std::runtime_error("OpenSSL cannot create a TLS context: " + openssl_error());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION);
    // An end of file without close_notify is an end of file: the sluice
    // messages have their own framing and acknowledgements.
    uint64_t options = SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION;
    if (kernel_) options |= SSL_OP_ENABLE_KTLS;
    if (role == TlsRole::Server)
        options |= SSL_OP_CIPHER_SERVER_PREFERENCE;  // kCipherSuites' order
    SSL_CTX_set_options(ctx_, options);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // No resumption: a connection lives long, and session tickets would be
    // records kernel TLS cannot pass to OpenSSL after the handshake.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx_, 0);
    SSL_CTX_set_default_read_buffer_len(ctx_, kReadBufferBytes);
    SSL_CTX_set_ciphersuites(ctx_, kCipherSuites);
    auto refuse = [&](const std::string& setting, const std::string& path) {
        const std::string why = openssl_error();
        SSL_CTX_free(ctx_);
        ctx_ = nullptr;
        throw std::invalid_argument(
            fmt::format("{} {}: OpenSSL refuses it ({})", setting, path, why));
    };
    if (!s_.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx_, s_.cert.c_str()) != 1)
            refuse(s_.names.cert, s_.cert);
        if (SSL_CTX_use_PrivateKey_file(ctx_, s_.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx_) != 1)
            refuse(s_.names.key, s_.key);
    }
    int verify = SSL_VERIFY_NONE;
    if (!s_.ca.empty()) {
        if (SSL_CTX_load_verify_file(ctx_, s_.ca.c_str()) != 1) refuse(s_.names.ca, s_.ca);
        verify = SSL_VERIFY_PEER;
        if (role == TlsRole::Server) {
            verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s_.ca.c_str()))
                SSL_CTX_set_client_CA_list(ctx_, names);
        }
    }
    SSL_CTX_set_verify(ctx_, verify, verify_callback);
}

TlsContext::~TlsContext() {
    SSL_CTX_free(ctx_);
}

std::unique_ptr<TlsContext> make_tls_context(const TlsSettings& s, TlsRole role) {
    if (!tls_enabled(s, role)) {
        check_tls_files(s, role);  // settings that need TLS on, without it
        return nullptr;
    }
    return std::make_unique<TlsContext>(s, role);
}

// ---- TlsChannel ------------------------------------------------------------------

TlsChannel::TlsChannel(const TlsContext& ctx, int fd, std::string_view verify_name,
                       std::size_t out_bytes)
    : ctx_(ctx), fd_(fd), out_(std::make_unique<std::byte[]>(out_bytes)), out_cap_(out_bytes) {
    ssl_ = SSL_new(ctx.get());
    out_bio_ = BIO_new(buffer_bio_method());
    if (!ssl_ || !out_bio_) {
        SSL_free(ssl_);
        BIO_free(out_bio_);
        throw std::runtime_error("OpenSSL cannot set up a TLS connection: " + openssl_error());
    }
    BIO_set_data(out_bio_, this);
    BIO_set_init(out_bio_, 1);
    SSL_set_ex_data(ssl_, channel_index(), this);
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
