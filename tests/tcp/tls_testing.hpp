// Certificates for the TLS tests, made by the test with OpenSSL's API in a
// fresh temporary directory: a CA, a collector certificate for
// "collector.test" and 127.0.0.1, a sender (client) certificate, an expired
// one, and a second CA with a collector and a sender certificate of its own.
// Also: whether this kernel offers kernel TLS.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice::tcp::testing {

class TlsFiles {
  public:
    TlsFiles() {
        char tmpl[] = "/tmp/sluice-tls-test-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        const Made ca = make("sluice test CA", nullptr, "", 0, 30, true);
        save(ca, "ca");
        const Made other = make("another CA", nullptr, "", 0, 30, true);
        save(other, "other-ca");
        const std::string names = "DNS:collector.test,IP:127.0.0.1";
        save(make("collector.test", &ca, names, 0, 30, false), "server");
        save(make("sender.test", &ca, "DNS:sender.test", 0, 30, false), "client");
        save(make("collector.test", &ca, names, -30, -1, false), "expired");
        save(make("collector.test", &other, names, 0, 30, false), "other-server");
        save(make("sender.test", &other, "DNS:sender.test", 0, 30, false), "other-client");
        // The server's key, encrypted with a passphrase.
        const std::string enc = path("encrypted.key");
        FILE* f = std::fopen(enc.c_str(), "w");
        EVP_PKEY* k = load_key(path("server.key"));
        PEM_write_PrivateKey(f, k, EVP_aes_256_cbc(), nullptr, 0, nullptr,
                             const_cast<char*>("secret"));
        std::fclose(f);
        EVP_PKEY_free(k);
        ca.free();
        other.free();
        write("garbage.pem", "this is not PEM\n");
    }
    ~TlsFiles() { std::filesystem::remove_all(dir_); }
    TlsFiles(const TlsFiles&) = delete;
    TlsFiles& operator=(const TlsFiles&) = delete;

    // "ca", "server", "client", "expired", "other-ca", "other-server",
    // "other-client": NAME.pem and NAME.key.
    std::string cert(const std::string& name) const { return path(name + ".pem"); }
    std::string key(const std::string& name) const { return path(name + ".key"); }
    std::string path(const std::string& file) const { return dir_ + "/" + file; }
    void write(const std::string& file, const std::string& text) const {
        FILE* f = std::fopen(path(file).c_str(), "w");
        std::fputs(text.c_str(), f);
        std::fclose(f);
    }

  private:
    struct Made {
        X509* cert = nullptr;
        EVP_PKEY* key = nullptr;
        void free() const {
            X509_free(cert);
            EVP_PKEY_free(key);
        }
    };

    static EVP_PKEY* load_key(const std::string& p) {
        FILE* f = std::fopen(p.c_str(), "r");
        EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
        std::fclose(f);
        return k;
    }

    static void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
        X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
        ASSERT_NE(e, nullptr) << value;
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }

    // Valid from `from_days` to `to_days` (relative to now).
    Made make(const std::string& cn, const Made* issuer, const std::string& names, long from_days,
              long to_days, bool ca) {
        Made m;
        m.key = EVP_EC_gen("P-256");
        m.cert = X509_new();
        X509_set_version(m.cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(m.cert), ++serial_);
        X509_gmtime_adj(X509_getm_notBefore(m.cert), from_days * 86400 - 60);
        X509_gmtime_adj(X509_getm_notAfter(m.cert), to_days * 86400);
        X509_set_pubkey(m.cert, m.key);
        X509_NAME* n = X509_get_subject_name(m.cert);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
        X509_set_issuer_name(m.cert, issuer ? X509_get_subject_name(issuer->cert) : n);
        X509* by = issuer ? issuer->cert : nullptr;
        if (ca) {
            add_ext(m.cert, by, NID_basic_constraints, "critical,CA:TRUE");
            add_ext(m.cert, by, NID_key_usage, "critical,keyCertSign,cRLSign");
            add_ext(m.cert, by, NID_subject_key_identifier, "hash");
        } else {
            add_ext(m.cert, by, NID_basic_constraints, "CA:FALSE");
            add_ext(m.cert, by, NID_subject_alt_name, names);
            add_ext(m.cert, by, NID_ext_key_usage, "serverAuth,clientAuth");
            add_ext(m.cert, by, NID_authority_key_identifier, "keyid");
        }
        X509_sign(m.cert, issuer ? issuer->key : m.key, EVP_sha256());
        return m;
    }

    void save(const Made& m, const std::string& name) {
        FILE* f = std::fopen(cert(name).c_str(), "w");
        PEM_write_X509(f, m.cert);
        std::fclose(f);
        f = std::fopen(key(name).c_str(), "w");
        PEM_write_PrivateKey(f, m.key, nullptr, nullptr, 0, nullptr, nullptr);
        std::fclose(f);
        if (name != "ca" && name != "other-ca") m.free();
    }

    std::string dir_;
    long serial_ = 0;
};

// True when this kernel has kernel TLS (TCP_ULP "tls" on a connected
// socket): the TLS tests then run in both modes and check which was used.
inline bool kernel_has_tls() {
    static const bool has = [] {
        const int l = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(l, 1);
        ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
        const int c = ::socket(AF_INET, SOCK_STREAM, 0);
        bool ok = ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::setsockopt(c, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == 0;
        ::close(c);
        ::close(l);
        return ok;
    }();
    return has;
}

}  // namespace sluice::tcp::testing
