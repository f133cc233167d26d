// Helpers for the tcp tests: sealed frames, and a collector stand-in on a
// loopback socket that the test drives from its own thread, step by step, so
// every interleaving is the test's choice (no timing assumptions).
#pragma once

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "../session/session_testing.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/tcp/tcp.hpp"
#include "sluice/wire/wire.hpp"

namespace sluice::tcp::testing {

using session::testing::key;
using session::testing::load_seq;
using session::testing::make_frame;

inline void set_nonblocking(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// A port on 127.0.0.1 that refuses connections: bound, never listening.
class RefusingPort {
  public:
    RefusingPort() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
    }
    ~RefusingPort() { ::close(fd_); }
    uint16_t port() const { return port_; }

  private:
    int fd_;
    uint16_t port_;
};

// Remembers the session each HELLO established, as a collector's handler
// does, so that its sender can resume it (resume_ticket).
class SessionMemory final : public session::ReceiverHandler {
  public:
    std::optional<session::ResumeTicket> resume_ticket(uint64_t stream_id,
                                                       uint64_t session_id) override {
        if (!known || stream_id != stream || session_id != session) return std::nullopt;
        ++resumes_asked;
        return ticket;
    }
    void remember(const session::Hello& h) {
        known = true;
        stream = h.stream_id;
        session = h.session_id;
        ticket.secret = h.secret;
        ticket.key_name = h.key_name;
    }
    void on_connection(session::ConnectionId, session::ReceiverTransport&,
                       std::string_view) override {}
    session::HelloAnswer on_hello(session::ConnectionId, const session::Hello&) override {
        return {};
    }
    bool on_frame(session::ConnectionId, const wire::FrameView&, session::Refusal&) override {
        return false;
    }
    std::optional<uint64_t> on_batch_done(session::ConnectionId, session::Refusal&) override {
        return std::nullopt;
    }
    void on_closed(session::ConnectionId, session::CloseCause, std::string_view) override {}
    void on_listener_error(std::string_view) override {}

    bool known = false;
    uint64_t stream = 0, session = 0;
    session::ResumeTicket ticket;
    int resumes_asked = 0;
};

// The collector's side of the transport on a real loopback socket, driven
// by explicit calls: accept, pump (read, verify frames, answer), ack, drop.
class FakeCollector {
  public:
    explicit FakeCollector(std::vector<std::byte> key = {}, bool listen_now = true)
        : key_(std::move(key)), reader_(), scratch_(1 << 20) {
        lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        const int one = 1;
        ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        if (listen_now) {
            EXPECT_EQ(::listen(lfd_, 16), 0);
        }
        socklen_t len = sizeof a;
        ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        set_nonblocking(lfd_);
    }
    ~FakeCollector() {
        drop();
        ::close(lfd_);
    }

    uint16_t port() const { return port_; }
    bool connected() const { return fd_ >= 0; }

    // Accepts a pending connection and sends the CHALLENGE (optionally as
    // another transport version). True if one was accepted.
    bool accept(uint8_t version = kTransportVersion) {
        const int fd = ::accept(lfd_, nullptr, nullptr);
        if (fd < 0) return false;
        drop();
        fd_ = fd;
        set_nonblocking(fd_);
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        session_ = std::make_unique<ReceiverSession>(std::make_shared<const session::Keyring>(key_),
                                                     &sessions);
        in_.clear();
        Nonce n{};
        n[0] = std::byte{7};
        auto c = session_->challenge(n);
        if (version != kTransportVersion) {
            Challenge ch;
            ch.flags = key_.empty() ? 0 : challenge_flag::kKeyRequired;
            ch.nonce = n;
            std::array<std::byte, kMaxMessageSize> buf;
            write({buf.data(), encode(ch, buf, version)});
        } else {
            write(c);
        }
        return true;
    }

    // Reads what is there and handles every complete message: answers the
    // HELLO (WELCOME resuming at `resume`, or the session's REJECT), records
    // frames, answers heartbeats when auto_ack. Returns false once the
    // connection is gone.
    bool pump() {
        if (fd_ < 0) return false;
        std::byte buf[65536];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n == 0) {
                drop();
                return false;
            }
            if (n < 0) break;
            in_.insert(in_.end(), buf, buf + n);
        }
        std::size_t off = 0;
        while (fd_ >= 0 && session_->state() != ReceiverState::Closed) {
            auto step = session_->next({in_.data() + off, in_.size() - off}, reader_, scratch_);
            if (step.kind == StepKind::NeedMore) break;
            off += step.consumed;
            switch (step.kind) {
                case StepKind::Hello:
                    hello = step.hello;
                    checked = step.checked;
                    // A session it does not resume is a new one: its secret
                    // is what a later resume must prove.
                    if (!step.checked.resume) sessions.remember(step.checked);
                    {
                        const auto w = session_->welcome(resume, new_session);
                        if (welcome_override)
                            write(*welcome_override);
                        else
                            write(w);
                    }
                    break;
                case StepKind::Frame:
                    sequences.push_back(step.frame.info().sequence);
                    frame_bytes.emplace_back(in_.begin() + off - step.consumed, in_.begin() + off);
                    if (auto_ack) ack(step.frame.info().sequence + 1);
                    break;
                case StepKind::Heartbeat:
                    ++heartbeats;
                    if (auto_ack) ack(sequences.empty() ? resume : sequences.back() + 1);
                    break;
                case StepKind::Failed:
                    failure = std::string(step.detail);
                    failure_reason = step.reason;
                    write(step.reply);
                    drop();
                    break;
                case StepKind::PeerRejected:
                    peer_rejected = std::string(step.detail);
                    peer_reject_reason = step.reason;
                    drop();
                    break;
                case StepKind::NeedMore:
                    break;
            }
        }
        in_.erase(in_.begin(),
                  in_.begin() + static_cast<std::ptrdiff_t>(std::min(off, in_.size())));
        return fd_ >= 0;
    }

    void ack(uint64_t next) {
        if (fd_ >= 0) write(session_->ack(next));
    }
    void write(std::span<const std::byte> b) {
        if (fd_ >= 0) {
            EXPECT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL),
                      static_cast<ssize_t>(b.size()));
        }
    }
    // Closes the connection (a crash, or a restart).
    void drop() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    // Behaviour knobs.
    uint64_t resume = 0;
    bool new_session = true;
    bool auto_ack = true;
    std::optional<std::vector<std::byte>> welcome_override;

    // What it saw.
    std::optional<Hello> hello;
    std::optional<session::Hello> checked;  // with the secret and key the checks established
    SessionMemory sessions;                 // forget with sessions.known = false
    std::vector<uint64_t> sequences;
    std::vector<std::vector<std::byte>> frame_bytes;
    uint64_t heartbeats = 0;
    std::string failure, peer_rejected;
    RejectReason failure_reason{}, peer_reject_reason{};

  private:
    std::vector<std::byte> key_;
    int lfd_ = -1, fd_ = -1;
    uint16_t port_ = 0;
    std::unique_ptr<ReceiverSession> session_;
    wire::FrameReader reader_;
    std::vector<std::byte> scratch_;
    std::vector<std::byte> in_;
};

// Polls the sender and the fake collector until `done` holds or `rounds`
// pass. The sender's clock is injected: it advances 50 us per round (1 s over
// the default rounds, below every timeout the tests configure unless they
// move `now` themselves); real time advances only as the kernel needs.
template <class Done>
bool drive(TcpSender& tx, FakeCollector& fc, uint64_t& now, Done done, int rounds = 20000) {
    for (int i = 0; i < rounds; ++i) {
        if (done()) return true;
        now += 50'000;
        tx.poll(now);
        if (!fc.connected()) fc.accept();
        fc.pump();
        if (i % 64 == 63) ::usleep(100);
    }
    return done();
}

}  // namespace sluice::tcp::testing
