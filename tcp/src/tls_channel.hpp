// Not for inclusion outside tcp/src: TLS 1.3 as a byte channel over a
// connected non-blocking socket, for TcpSender and TcpListener. Its calls
// behave as the socket calls they replace (recv, send, sendmsg: a count, 0
// at the end, or -1 with errno, EAGAIN when the socket is not ready), so
// each call site keeps its shape; error() says what a failure means and what
// to change.
//
// After the handshake the record layer is the kernel's when it has kernel
// TLS (OpenSSL's SSL_OP_ENABLE_KTLS sets TCP_ULP "tls"): then recv, send and
// sendmsg (writev of whole frames) go straight to the socket. Otherwise
// OpenSSL encrypts into a buffer the channel owns (allocated with the
// channel, one per connection) and the channel sends it with plain send():
// many records per system call and no allocation per write, with no
// SSL_write retry state to keep (OpenSSL never sees a socket that is full).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <sys/types.h>
#include <sys/uio.h>

#include "sluice/tcp/tls.hpp"

using SSL = struct ssl_st;
using SSL_CTX = struct ssl_ctx_st;
using BIO = struct bio_st;

namespace sluice::tcp {

// OpenSSL's queued errors as one line (and the queue cleared).
std::string tls_openssl_error();
// The SSL ex-data slot where a connection's TlsChannel is kept (for the
// verification callback's message).
int tls_channel_index();

// An SSL_CTX for one end, built from checked files (check_tls_files's
// errors: std::invalid_argument).
class TlsContext {
  public:
    TlsContext(const TlsSettings& s, TlsRole role);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    SSL_CTX* get() const { return ctx_; }
    const TlsSettings& settings() const { return s_; }
    TlsRole role() const { return role_; }
    bool kernel() const { return kernel_; }  // kernel TLS allowed (settings and SLUICE_KTLS)

  private:
    TlsSettings s_;
    TlsRole role_;
    bool kernel_;
    SSL_CTX* ctx_ = nullptr;
};

// nullptr when `s` leaves TLS off for `role`.
std::unique_ptr<TlsContext> make_tls_context(const TlsSettings& s, TlsRole role);

class TlsChannel {
  public:
    enum class Progress : uint8_t { Done, Again, Failed };
    enum class Failure : uint8_t {
        None,
        Handshake,  // TLS itself: certificates, names, versions, alerts (error() says which)
        Plaintext,  // the peer speaks sluice without TLS (its first bytes are "SLC")
        NotTls,     // server: the peer's first bytes are neither TLS nor sluice
        Io,         // the socket failed (errno)
    };

    // `fd` stays the caller's (never closed here). Client: `verify_name` is
    // the name or IP address the server's certificate must carry.
    // `out_bytes`: the user-space ciphertext buffer's size. Throws
    // std::runtime_error when OpenSSL cannot allocate.
    TlsChannel(const TlsContext& ctx, int fd, std::string_view verify_name, std::size_t out_bytes);
    ~TlsChannel();
    TlsChannel(const TlsChannel&) = delete;
    TlsChannel& operator=(const TlsChannel&) = delete;

    // Drives the handshake; Again: call again when the socket is readable
    // (or writable: wants_write()).
    Progress handshake();
    bool established() const { return established_; }
    // Server: the peer's first bytes were a TLS handshake (until then a
    // plaintext REJECT may still be sent on the socket).
    bool started() const { return started_; }
    bool wants_write() const;  // ciphertext waits for the socket, or OpenSSL wants to write

    // As ::recv(MSG_DONTWAIT): > 0, 0 (the peer closed), -1 with errno
    // (EAGAIN; EPROTO: a TLS failure, see error()).
    ssize_t recv(void* buf, std::size_t len);
    // As ::send / ::sendmsg with MSG_NOSIGNAL | MSG_DONTWAIT: the plaintext
    // bytes taken (in user space: encrypted into the buffer, sent as the
    // socket takes them; flush() sends the rest).
    ssize_t send(const void* buf, std::size_t len);
    ssize_t sendv(const struct iovec* iov, int count);
    // Sends buffered ciphertext: true when none is left; false with errno
    // (EAGAIN: the socket is full).
    bool flush();
    bool backlog() const { return out_off_ < out_len_; }
    // Decrypted bytes (or a whole record) wait inside OpenSSL: read them
    // before waiting for the socket, which will not say so.
    bool pending() const;

    Failure failure() const { return failure_; }
    // What the last failure means and what to change (empty before one).
    std::string_view error() const { return error_; }
    // For a call site's message: error() after a TLS failure, else strerror(err).
    const char* error_text(int err) const;

    bool kernel_send() const { return kernel_send_; }
    bool kernel_recv() const { return kernel_recv_; }
    // Records the verification failure of a certificate (the verify callback).
    void note_certificate(std::string text) { cert_note_ = std::move(text); }

    // The user-space buffer BIO's side (tls.cpp).
    bool buffer_write(const char* data, int len);

  private:
    Progress fail(Failure f, std::string text);
    Progress after_handshake();
    void describe_failure(int ssl_error);
    std::string explain_alert(int alert) const;
    std::string plaintext_collector() const;
    bool plaintext_reject() const;  // client: a whole plaintext REJECT waits in the socket
    ssize_t kernel_recvmsg(void* buf, std::size_t len);
    std::size_t plaintext_room() const;

    const TlsContext& ctx_;
    int fd_;
    SSL* ssl_ = nullptr;
    BIO* out_bio_ = nullptr;  // the buffer BIO (user-space sending)
    std::unique_ptr<std::byte[]> out_;
    std::size_t out_cap_, out_off_ = 0, out_len_ = 0;
    bool established_ = false;
    bool started_ = false;  // server: the first bytes were TLS; client: the server's were
    bool want_write_ = false;
    bool kernel_send_ = false, kernel_recv_ = false;
    Failure failure_ = Failure::None;
    std::string error_;
    std::string cert_note_;
};

}  // namespace sluice::tcp
