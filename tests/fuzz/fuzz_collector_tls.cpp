// libFuzzer target: the collector's TCP listener with TLS 1.3 (--tls-cert,
// optionally --tls-ca and --key-file), over real loopback sockets, driven by
// a client whose every byte comes from the input. It reaches what the
// socket-less collector_stream target cannot: the sniffing of a peer's first
// bytes (TLS, plaintext sluice, anything else), OpenSSL's handshake on
// hostile ClientHellos, client certificates present or not, the listener's
// TLS glue (handshake progress, the plaintext REJECT for a sender without
// TLS and its grace, records split anywhere, KeyUpdate, close_notify, bytes
// that are not records in the middle of a session) and its timeouts.
//
// Input: one mode byte, then the body.
//   bit 0: 0: raw: the body goes to the socket as it is, as the client's
//             first bytes (a ClientHello, plaintext sluice, garbage)
//          1: session: a real TLS 1.3 handshake first (OpenSSL client), then
//             the body is a script (below)
//   bit 1: session: repair the HELLO's proof (for the nonce of the
//          collector's CHALLENGE) and every message and frame CRC of the
//          stream the script writes, so mutations reach what lies behind
//   bit 2: the collector has a key
//   bit 3: the collector asks for client certificates (--tls-ca)
//   bit 4: session: the client presents its certificate;
//          raw: the client half-closes after its bytes
//   bit 5: at the end, time passes before the client leaves: past the TLS
//          grace, the handshake deadline and the idle timeout
// Script: operations until the body ends; each is one byte, low 3 bits the
// kind, high 5 bits a parameter p:
//   0  u16 n, n bytes: stream bytes, in one TLS record
//   1  u16 n, n bytes: stream bytes, in records of p+1 bytes
//   2  u16 n, n bytes: raw bytes on the socket, outside TLS
//   3  KeyUpdate (p odd: the collector is asked to update too)
//   4  close_notify
//   5  TCP half-close
//   6  time passes: p * 100 ms
//   7  nothing (the collector answers what came)
// The "stream" is what a sender writes inside TLS: the bytes of every 0 and
// 1 operation, in order, repaired as one (bit 1). When it starts with a
// frame, a valid HELLO goes first.
//
// Beyond "no crash, no out-of-bounds access, no leak" (ASan + UBSan):
// everything the collector says inside TLS is a valid control message, the
// CHALLENGE first and acknowledgements never going back; what it says in
// plaintext is one REJECT; frames reach the handler only after a hello and
// only of its stream; every connection the handler is told of ends exactly
// once; and when the client has gone (and time has passed) the listener
// holds no connection. A violation traps.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "collector_fuzzing.hpp"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/session/keyring.hpp"
#include "sluice/tcp/listener.hpp"
#include "sluice/tcp/protocol.hpp"

namespace {

using namespace sluice;
using fuzzing::check;
using wire::load_le;

// ---- certificates, made once per process ------------------------------------------

struct Pki {
    std::string dir, ca, server_cert, server_key, client_cert, client_key;
};

EVP_PKEY* new_key() {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    check(k != nullptr);
    return k;
}

X509* new_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool ca,
               long serial) {
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
    const auto add = [&](int nid, const char* value) {
        X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        check(e != nullptr);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    };
    if (ca) {
        add(NID_basic_constraints, "critical,CA:TRUE");
        add(NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add(NID_subject_alt_name, "DNS:collector.test,IP:127.0.0.1");
        add(NID_ext_key_usage, "serverAuth,clientAuth");
    }
    check(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    check(f != nullptr);
    if (cert) check(PEM_write_X509(f, cert) == 1);
    if (key) check(PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
    std::fclose(f);
}

char g_dir[256];  // for the clean-up at exit, which may run after statics are gone

void remove_pki_dir() {
    for (const char* f : {"ca.pem", "server.pem", "server.key", "client.pem", "client.key"})
        ::unlink((std::string(g_dir) + "/" + f).c_str());
    ::rmdir(g_dir);
}

const Pki& pki() {
    static const Pki p = [] {
        Pki r;
        const char* tmp = std::getenv("TMPDIR");
        std::string t = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-fuzz-tls-XXXXXX";
        check(::mkdtemp(t.data()) != nullptr && t.size() < sizeof g_dir);
        std::memcpy(g_dir, t.c_str(), t.size() + 1);
        std::atexit(remove_pki_dir);
        r.dir = t;
        EVP_PKEY* ca_key = new_key();
        X509* ca = new_cert(ca_key, "fuzz CA", nullptr, nullptr, true, 1);
        EVP_PKEY* server_key = new_key();
        X509* server = new_cert(server_key, "collector.test", ca, ca_key, false, 2);
        EVP_PKEY* client_key = new_key();
        X509* client = new_cert(client_key, "sender.test", ca, ca_key, false, 3);
        r.ca = r.dir + "/ca.pem";
        r.server_cert = r.dir + "/server.pem";
        r.server_key = r.dir + "/server.key";
        r.client_cert = r.dir + "/client.pem";
        r.client_key = r.dir + "/client.key";
        write_pem(r.ca, ca, nullptr);
        write_pem(r.server_cert, server, nullptr);
        write_pem(r.server_key, nullptr, server_key);
        write_pem(r.client_cert, client, nullptr);
        write_pem(r.client_key, nullptr, client_key);
        for (X509* x : {ca, server, client})
            X509_free(x);
        for (EVP_PKEY* k : {ca_key, server_key, client_key})
            EVP_PKEY_free(k);
        return r;
    }();
    return p;
}

// ---- the collector's side: a listener and a handler that checks its calls ---------

class CheckingHandler final : public session::ReceiverHandler {
  public:
    void on_connection(session::ConnectionId conn, session::ReceiverTransport&,
                       std::string_view) override {
        check(open_.emplace(conn, Conn{}).second);
    }
    session::HelloAnswer on_hello(session::ConnectionId conn, const session::Hello& h) override {
        Conn& c = at(conn);
        check(!c.hello);
        c.hello = true;
        c.stream = h.stream_id;
        session::HelloAnswer a;
        a.accept = true;
        a.new_session = true;
        return a;
    }
    bool on_frame(session::ConnectionId conn, const wire::FrameView& frame,
                  session::Refusal&) override {
        Conn& c = at(conn);
        check(c.hello && frame.info().stream_id == c.stream);
        uint8_t sink = 0;
        for (const wire::Record& r : frame)
            for (std::byte b : r.data)
                sink ^= static_cast<uint8_t>(b);
        asm volatile("" : : "r"(sink));
        c.next = std::max(c.next, frame.info().sequence + 1);
        return true;
    }
    std::optional<uint64_t> on_batch_done(session::ConnectionId conn, session::Refusal&) override {
        return at(conn).next;
    }
    void on_closed(session::ConnectionId conn, session::CloseCause, std::string_view) override {
        check(open_.erase(conn) == 1);
    }
    void on_listener_error(std::string_view) override {}
    std::size_t open() const { return open_.size(); }

  private:
    struct Conn {
        bool hello = false;
        uint64_t stream = 0, next = 0;
    };
    Conn& at(session::ConnectionId conn) {
        auto it = open_.find(conn);
        check(it != open_.end());
        return it->second;
    }
    std::unordered_map<session::ConnectionId, Conn> open_;
};

struct Collector {
    CheckingHandler handler;
    std::unique_ptr<tcp::TcpListener> listener;
};

// One per (key, client certificates), kept for the process: a listener
// costs a TLS context and a socket.
Collector& collector(bool key, bool client_certs) {
    static std::unique_ptr<Collector> all[4];
    std::unique_ptr<Collector>& c = all[(key ? 1 : 0) | (client_certs ? 2 : 0)];
    if (!c) {
        c = std::make_unique<Collector>();
        tcp::ListenerConfig cfg;
        cfg.listen = session::Endpoint{"127.0.0.1", 0};
        if (key)
            cfg.keys = std::make_shared<const session::Keyring>(
                std::vector<std::byte>(fuzzing::fuzz_key().begin(), fuzzing::fuzz_key().end()));
        cfg.max_frame_bytes = 1u << 20;
        cfg.tls.cert = pki().server_cert;
        cfg.tls.key = pki().server_key;
        if (client_certs) cfg.tls.ca = pki().ca;
        cfg.tls.kernel = false;  // the record layer in OpenSSL, where the fuzzer sees it
        c->listener = std::make_unique<tcp::TcpListener>(cfg, c->handler);
    }
    return *c;
}

SSL_CTX* client_context(bool with_cert) {
    static SSL_CTX* ctx[2] = {nullptr, nullptr};
    SSL_CTX*& c = ctx[with_cert ? 1 : 0];
    if (!c) {
        c = SSL_CTX_new(TLS_client_method());
        check(c != nullptr);
        SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);  // the collector is what is tested
        if (with_cert) {
            check(SSL_CTX_use_certificate_file(c, pki().client_cert.c_str(), SSL_FILETYPE_PEM) ==
                  1);
            check(SSL_CTX_use_PrivateKey_file(c, pki().client_key.c_str(), SSL_FILETYPE_PEM) == 1);
        }
    }
    return c;
}

// ---- the client --------------------------------------------------------------------

// The listener's clock: every input starts far past the previous one's.
uint64_t g_now = 0;

struct Client {
    Collector& col;
    int fd = -1;
    SSL* ssl = nullptr;
    BIO* rbio = nullptr;  // ciphertext from the collector (the SSL's)
    BIO* wbio = nullptr;  // ciphertext to the collector (the SSL's)
    bool handshaking = false, established = false, eof = false, failed = false;
    std::vector<std::byte> raw;    // bytes on the socket, when not speaking TLS
    std::vector<std::byte> plain;  // what the collector said inside TLS

    explicit Client(Collector& c) : col(c) {}
    ~Client() {
        SSL_free(ssl);
        if (fd >= 0) {
            // A reset, not a FIN: no TIME_WAIT left for each of millions of inputs.
            const linger l{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            ::close(fd);
        }
    }

    bool connect_to(uint16_t port) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        check(fd >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return false;
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return true;
    }

    void start_tls(bool with_cert) {
        ssl = SSL_new(client_context(with_cert));
        check(ssl != nullptr);
        rbio = BIO_new(BIO_s_mem());
        wbio = BIO_new(BIO_s_mem());
        SSL_set_bio(ssl, rbio, wbio);
        SSL_set_connect_state(ssl);
        handshaking = true;
    }

    // Writes everything, letting the collector read when the socket is full.
    void send_raw(const void* p, std::size_t n) {
        const auto* b = static_cast<const char*>(p);
        for (int stuck = 0; n > 0 && !failed && stuck < 1000;) {
            const ssize_t k = ::send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k > 0) {
                b += k;
                n -= static_cast<std::size_t>(k);
                stuck = 0;
            } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                col.listener->poll(g_now);
                drain_socket();
                ++stuck;
            } else {
                failed = true;  // the collector closed: what is left goes nowhere
            }
        }
    }

    bool drain_socket() {
        bool moved = false;
        char buf[16384];
        for (;;) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                moved = true;
                if (ssl)
                    BIO_write(rbio, buf, static_cast<int>(n));
                else
                    raw.insert(raw.end(), reinterpret_cast<std::byte*>(buf),
                               reinterpret_cast<std::byte*>(buf) + n);
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) eof = true;
            return moved;
        }
    }

    bool flush_tls() {
        if (!ssl) return false;
        bool moved = false;
        char buf[16384];
        int n;
        while ((n = BIO_read(wbio, buf, sizeof buf)) > 0) {
            send_raw(buf, static_cast<std::size_t>(n));
            moved = true;
        }
        return moved;
    }

    bool advance_tls() {
        if (!ssl || failed) return false;
        bool moved = false;
        if (handshaking) {
            ERR_clear_error();
            const int r = SSL_do_handshake(ssl);
            if (r == 1) {
                handshaking = false;
                established = moved = true;
            } else if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) {
                handshaking = false;
                failed = true;
            }
        }
        if (established) {
            char buf[16384];
            std::size_t n = 0;
            ERR_clear_error();
            while (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) {
                plain.insert(plain.end(), reinterpret_cast<std::byte*>(buf),
                             reinterpret_cast<std::byte*>(buf) + n);
                moved = true;
            }
            ERR_clear_error();
        }
        return moved;
    }

    // Until neither end has anything more to say.
    void pump() {
        for (int i = 0; i < 256; ++i) {
            bool moved = flush_tls();
            col.listener->poll(g_now);
            moved |= drain_socket();
            moved |= advance_tls();
            moved |= flush_tls();
            if (!moved) {
                col.listener->poll(g_now);
                if (!drain_socket() && !advance_tls()) return;
            }
        }
    }

    void write_tls(const std::byte* p, std::size_t n, std::size_t record) {
        if (!established || failed) return;
        for (std::size_t at = 0; at < n;) {
            const std::size_t k = std::min(record, n - at);
            std::size_t w = 0;
            ERR_clear_error();
            if (SSL_write_ex(ssl, p + at, k, &w) != 1) {
                failed = true;
                return;
            }
            at += w;
            flush_tls();
        }
    }

    void pass_time(uint64_t ns) {
        g_now += ns;
        col.listener->timers(g_now);
        pump();
    }
};

// The collector's side of the conversation inside TLS: the CHALLENGE, then
// WELCOME, REJECT or ACKs, each a valid message, acknowledgements never
// going back. Returns the CHALLENGE's nonce (zeros when none came).
tcp::Nonce check_replies(const std::vector<std::byte>& in) {
    tcp::Nonce nonce{};
    std::size_t at = 0;
    uint64_t last_ack = 0;
    bool first = true, rejected = false;
    while (at < in.size()) {
        const tcp::ParsedMessage m = tcp::parse_message({in.data() + at, in.size() - at});
        check(m.status == tcp::MessageStatus::Ok);
        check(!rejected);  // nothing follows a REJECT
        if (first) {
            check(m.header.type == tcp::MessageType::Challenge);
            tcp::Challenge c;
            check(tcp::decode(m.body, c));
            nonce = c.nonce;
        } else if (m.header.type == tcp::MessageType::Ack) {
            tcp::Ack a;
            check(tcp::decode(m.body, a));
            check(a.next_sequence >= last_ack);
            last_ack = a.next_sequence;
        } else if (m.header.type == tcp::MessageType::Reject) {
            tcp::Reject r;
            check(tcp::decode(m.body, r) && !r.text.empty());
            rejected = true;
        } else {
            check(m.header.type == tcp::MessageType::Welcome);
        }
        first = false;
        at += m.size;
    }
    return nonce;
}

// Bytes the collector sent before any TLS: nothing, or one REJECT (a
// sender without TLS; a handshake that never began).
void check_plaintext_reply(const std::vector<std::byte>& raw) {
    if (raw.empty() || static_cast<uint8_t>(raw[0]) != 'S') return;  // TLS records
    const tcp::ParsedMessage m = tcp::parse_message(raw);
    check(m.status == tcp::MessageStatus::Ok && m.size == raw.size());
    check(m.header.type == tcp::MessageType::Reject);
    tcp::Reject r;
    check(tcp::decode(m.body, r) && !r.text.empty());
}

struct Op {
    uint8_t kind, param;
    std::size_t at = 0, len = 0;  // data: where in the body (0, 1, 2)
};

std::vector<Op> parse_script(const std::byte* p, std::size_t n) {
    std::vector<Op> ops;
    for (std::size_t at = 0; at < n;) {
        Op op;
        const auto b = static_cast<uint8_t>(p[at++]);
        op.kind = b & 7;
        op.param = b >> 3;
        if (op.kind <= 2) {
            if (n - at < 2) break;
            const std::size_t want = load_le<uint16_t>(p + at);
            at += 2;
            op.at = at;
            op.len = std::min(want, n - at);
            at += op.len;
        }
        ops.push_back(op);
    }
    return ops;
}

void finish(Client& c, bool time_passes) {
    if (time_passes) {
        c.pass_time(1'100'000'000);   // the TLS grace
        c.pass_time(5'000'000'000);   // the handshake deadline
        c.pass_time(11'000'000'000);  // the idle timeout
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    const auto* body = reinterpret_cast<const std::byte*>(data + 1);
    const std::size_t n = size - 1;
    const bool session = mode & 1;
    Collector& col = collector(mode & 4, mode & 8);
    g_now += 3600'000'000'000ull;
    {
        Client c(col);
        if (!c.connect_to(col.listener->port())) return 0;
        c.pump();  // the collector accepts
        if (!session) {
            c.send_raw(body, n);
            if (mode & 16) ::shutdown(c.fd, SHUT_WR);
            c.pump();
            finish(c, mode & 32);
            check_plaintext_reply(c.raw);
        } else {
            c.start_tls(mode & 16);
            c.pump();
            const std::vector<Op> ops = parse_script(body, n);
            // The stream: the bytes of every stream operation, repaired as one.
            std::vector<std::byte> stream;
            for (const Op& op : ops)
                if (op.kind <= 1) stream.insert(stream.end(), body + op.at, body + op.at + op.len);
            const tcp::Nonce nonce = check_replies(c.plain);
            const std::span<const std::byte> key =
                (mode & 4) ? std::span<const std::byte>(fuzzing::fuzz_key())
                           : std::span<const std::byte>();
            fuzzing::fix_up(stream.data(), stream.size(), mode & 2, mode & 2, key, nonce);
            if (stream.size() >= 4 && load_le<uint32_t>(stream.data()) == wire::kMagic) {
                const uint64_t sid =
                    stream.size() >= wire::offset::stream_id + 8
                        ? load_le<uint64_t>(stream.data() + wire::offset::stream_id)
                        : 0;
                const auto hello = fuzzing::valid_hello(sid, key, nonce);
                c.write_tls(hello.data(), hello.size(), hello.size());
                c.pump();
            }
            std::size_t taken = 0;  // of `stream`
            for (const Op& op : ops) {
                switch (op.kind) {
                    case 0:
                    case 1:
                        c.write_tls(stream.data() + taken, op.len,
                                    op.kind == 0 ? std::max<std::size_t>(op.len, 1)
                                                 : std::size_t{op.param} + 1);
                        taken += op.len;
                        break;
                    case 2:
                        c.send_raw(body + op.at, op.len);
                        break;
                    case 3:
                        if (c.established && !c.failed) {
                            SSL_key_update(c.ssl, (op.param & 1) ? SSL_KEY_UPDATE_REQUESTED
                                                                 : SSL_KEY_UPDATE_NOT_REQUESTED);
                            SSL_do_handshake(c.ssl);
                            ERR_clear_error();
                        }
                        break;
                    case 4:
                        if (c.established && !c.failed) {
                            SSL_shutdown(c.ssl);
                            ERR_clear_error();
                            c.established = false;  // nothing more is written
                        }
                        break;
                    case 5:
                        ::shutdown(c.fd, SHUT_WR);
                        c.failed = true;
                        break;
                    case 6:
                        c.pass_time(uint64_t{op.param} * 100'000'000);
                        break;
                    default:
                        break;
                }
                c.pump();
            }
            finish(c, mode & 32);
            check_replies(c.plain);
        }
    }
    // The client is gone: the collector notices at once, or at its deadlines.
    for (int i = 0; i < 4 && col.listener->connections() > 0; ++i)
        col.listener->poll(g_now);
    if (col.listener->connections() > 0) {
        g_now += 60'000'000'000ull;
        col.listener->timers(g_now);
        col.listener->poll(g_now);
    }
    check(col.listener->connections() == 0);
    check(col.handler.open() == 0);
    return 0;
}
