// TLS 1.3 for the TCP transport: the files' checks and the contexts (the
// byte channel is tls_channel.cpp). Every failure becomes a sentence that
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

// User-space receiving reads ahead this much per recv(): fewer system calls
// than one per record.
constexpr long kReadBufferBytes = 64 * 1024;
// AES-128-GCM first (the cheapest where AES-NI is, as kernel TLS has it
// too), then the other TLS 1.3 suites.
constexpr const char* kCipherSuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

}  // namespace

std::string tls_openssl_error() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "unknown error" : out;
}

namespace {

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

}  // namespace

int tls_channel_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

namespace {

// Remembers, for the failure's message, what was wrong with the certificate
// that failed verification.
int verify_callback(int ok, X509_STORE_CTX* st) {
    if (ok) return ok;
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* ch = ssl ? static_cast<TlsChannel*>(SSL_get_ex_data(ssl, tls_channel_index())) : nullptr;
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
    if (!ctx_)
        throw std::runtime_error("OpenSSL cannot create a TLS context: " + tls_openssl_error());
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
        const std::string why = tls_openssl_error();
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

}  // namespace sluice::tcp
