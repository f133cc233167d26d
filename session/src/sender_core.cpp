#include <stdexcept>

#include <fmt/format.h>

#include "sluice/session/detail/text.hpp"
#include "sluice/session/key.hpp"
#include "sluice/session/sender.hpp"

namespace sluice::session {

std::string_view to_string(SenderState s) {
    switch (s) {
        case SenderState::Waiting:
            return "waiting";
        case SenderState::Connecting:
            return "connecting";
        case SenderState::Handshake:
            return "handshake";
        case SenderState::Streaming:
            return "streaming";
    }
    return "unknown";
}

void validate(const SenderSettings& c) {
    if (c.retransmit_frames == 0)
        throw std::invalid_argument("sender: retransmit_frames must be at least 1");
    if (c.timeout_ms == 0) throw std::invalid_argument("sender: timeout_ms must be at least 1");
    if (c.reconnect_min_ms == 0 || c.reconnect_max_ms < c.reconnect_min_ms)
        throw std::invalid_argument("sender: need 1 <= reconnect_min_ms <= reconnect_max_ms");
    if (!c.key.empty() && c.key.size() < kMinKeyBytes)
        throw std::invalid_argument(fmt::format(
            "sender: the key has {} bytes, at least {} are needed", c.key.size(), kMinKeyBytes));
}

static const SenderSettings& validated(const SenderSettings& s) {
    validate(s);
    return s;
}

SenderCore::SenderCore(const SenderSettings& settings, SenderTransport& transport)
    : set_(validated(settings)),
      transport_(transport),
      session_id_(set_.session_id ? set_.session_id : random_u64()),
      rtx_(set_.retransmit_frames),
      backoff_(set_.reconnect_min_ms, set_.reconnect_max_ms,
               set_.jitter_seed ? set_.jitter_seed : random_u64()) {}

SubmitResult SenderCore::submit(std::span<const std::byte> frame, uint64_t sequence, void* cookie) {
    if (!rtx_.push(frame, sequence, cookie)) {
        stats_.submit_full.inc();
        return SubmitResult::Full;
    }
    stats_.frames_submitted.inc();
    return SubmitResult::Accepted;
}

void SenderCore::set_state(SenderState s) {
    state_ = s;
    // relaxed: a status display; pairs with nothing.
    stats_.state.store(static_cast<uint8_t>(s), std::memory_order_relaxed);
    stats_.connected.store(s == SenderState::Streaming, std::memory_order_relaxed);
}

void SenderCore::record_error(std::string_view text) {
    stats_.last_error.set(text);
    stats_.errors.inc();
}

Hello SenderCore::hello() const {
    Hello h;
    h.stream_id = set_.stream_id;
    h.session_id = session_id_;
    h.position = rtx_.position();
    h.heartbeat_ms = set_.heartbeat_ms;
    h.has_key = !set_.key.empty();
    h.resume = has_secret_;
    if (has_secret_) h.secret = secret_;
    return h;
}

void SenderCore::handshaking(uint64_t now) {
    // The collector speaks first on TCP, the sender on RDMA: either way the
    // handshake gets a timeout of its own.
    deadline_ns_ = now + uint64_t{set_.timeout_ms} * 1'000'000;
    set_state(SenderState::Handshake);
}

void SenderCore::welcomed(uint64_t now, uint64_t resume_sequence) {
    stats_.frames_acknowledged.add(rtx_.acknowledge(resume_sequence));
    ack_limit_ = resume_sequence;
    // The backoff starts over only once this connection proves useful (an
    // acknowledgement of new frames, or staying up a while): a collector
    // that welcomes and then refuses at once (disk full, a frame it cannot
    // take) must not be retried in a tight loop.
    streaming_since_ns_ = now;
    stats_.connects.inc();
    last_rx_ns_ = last_tx_ns_ = now;
    awaiting_answer_ = heartbeat_out_ = false;
    set_state(SenderState::Streaming);
}

bool SenderCore::acknowledged(uint64_t now, uint64_t next_sequence) {
    last_rx_ns_ = now;
    if (next_sequence > std::max(ack_limit_, rtx_.sent_limit())) {
        char msg[320];
        fail(now, detail::format_into(msg,
                                      "collector {} acknowledged frames up to sequence {}, but "
                                      "this sender sent only up to {}: a broken collector; "
                                      "reconnecting",
                                      set_.peer, next_sequence,
                                      std::max(ack_limit_, rtx_.sent_limit())));
        return false;
    }
    const std::size_t n = rtx_.acknowledge(next_sequence);
    stats_.frames_acknowledged.add(n);
    if (n) backoff_.reset();
    heartbeat_out_ = false;
    return true;
}

void SenderCore::sent(uint64_t now, std::size_t bytes, const RetransmitBuffer::Advance& a) {
    stats_.frames_sent.add(a.frames);
    stats_.frames_retransmitted.add(a.retransmitted);
    stats_.bytes_sent.add(bytes);
    if (!awaiting_answer_) {
        awaiting_answer_ = true;
        last_rx_ns_ = now;  // the timeout counts from the first unanswered send
    }
    last_tx_ns_ = now;
}

void SenderCore::sent_control(uint64_t now, std::size_t bytes) {
    stats_.bytes_sent.add(bytes);
    last_tx_ns_ = now;
}

uint64_t SenderCore::settle_ns() const {
    return 2ull * std::max(set_.reconnect_max_ms, 1000u) * 1'000'000;
}

void SenderCore::rejected(uint64_t now, RejectReason reason, std::string_view text) {
    // The text is the collector's; keep only printable bytes in the log.
    char clean[512];
    std::size_t n = 0;
    for (char ch : text) {
        if (n == sizeof clean) break;
        clean[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    stats_.rejected_by_collector.inc();
    const bool resume_refused = reason == RejectReason::ResumeUnknown && has_secret_;
    if (resume_refused) {
        // The next hello starts a new session, at once: nothing was wrong
        // with the collector, only with what this sender asked of it.
        has_secret_ = false;
        stats_.resumes_refused.inc();
    }
    char msg[640];
    const std::string_view name = to_string(reason);
    fail(now, name == "unknown"
                  ? detail::format_into(msg, "collector {} rejected the connection (reason {}): {}",
                                        set_.peer, static_cast<unsigned>(reason),
                                        std::string_view(clean, n))
                  : detail::format_into(msg, "collector {} rejected the connection ({}): {}",
                                        set_.peer, name, std::string_view(clean, n)));
    if (resume_refused && !closed_) next_attempt_ns_ = now;
}

void SenderCore::fail(uint64_t now, std::string_view message, bool timeout) {
    if (state_ == SenderState::Streaming)
        stats_.disconnects.inc();
    else
        stats_.connect_failures.inc();
    if (timeout) stats_.timeouts.inc();
    record_error(message);
    transport_.drop_connection();
    rtx_.rewind();
    awaiting_answer_ = heartbeat_out_ = false;
    next_attempt_ns_ = closed_ ? UINT64_MAX : now + backoff_.next_delay_ns();
    set_state(SenderState::Waiting);
}

void SenderCore::disconnect(uint64_t now, std::string_view why) {
    if (state_ == SenderState::Waiting) return;
    fail(now, why);
}

void SenderCore::close() {
    transport_.close_connection();
    rtx_.rewind();
    awaiting_answer_ = heartbeat_out_ = false;
    closed_ = true;
    next_attempt_ns_ = UINT64_MAX;
    set_state(SenderState::Waiting);
}

bool SenderCore::poll(uint64_t now) {
    switch (state_) {
        case SenderState::Waiting:
            if (now < next_attempt_ns_) return false;
            deadline_ns_ = now + uint64_t{set_.timeout_ms} * 1'000'000;
            set_state(SenderState::Connecting);
            transport_.begin_connect(*this, now);
            return true;
        case SenderState::Connecting:
        case SenderState::Handshake: {
            const bool work = transport_.poll_setup(*this, now);
            if (state_ != SenderState::Connecting && state_ != SenderState::Handshake) return true;
            if (now >= deadline_ns_) {
                char msg[256];
                fail(now,
                     state_ == SenderState::Connecting
                         ? detail::format_into(msg,
                                               "connect to collector {} timed out after {} ms; "
                                               "check the address and any firewall between",
                                               set_.peer, set_.timeout_ms)
                         : detail::format_into(msg,
                                               "handshake with collector {} timed out after {} "
                                               "ms: is that port a sluice-collector, and is it "
                                               "running (not stopped)?",
                                               set_.peer, set_.timeout_ms),
                     true);
                return true;
            }
            return work;
        }
        case SenderState::Streaming:
            break;
    }

    bool work = transport_.poll_stream(*this, now);
    if (state_ != SenderState::Streaming) return true;
    if (backoff_.failures() && now - streaming_since_ns_ >= settle_ns()) backoff_.reset();

    // The collector acknowledged everything sent so far: nothing to wait for
    // unless a heartbeat is out.
    if (rtx_.unacknowledged() == rtx_.unsent() && !heartbeat_out_) awaiting_answer_ = false;

    if (set_.heartbeat_ms && !heartbeat_out_ && rtx_.unsent() == 0 && !rtx_.partially_sent() &&
        now - last_tx_ns_ >= uint64_t{set_.heartbeat_ms} * 1'000'000) {
        if (transport_.heartbeat(*this, now, ++heartbeats_)) {
            if (state_ != SenderState::Streaming) return true;  // sending it failed
            stats_.heartbeats_sent.inc();
            heartbeat_out_ = true;
            last_tx_ns_ = now;
            if (!awaiting_answer_) {
                awaiting_answer_ = true;
                last_rx_ns_ = now;
            }
            work = true;
        }
    }

    if (awaiting_answer_ && now - last_rx_ns_ >= uint64_t{set_.timeout_ms} * 1'000'000) {
        char msg[256];
        fail(now,
             detail::format_into(msg,
                                 "collector {} sent no acknowledgement for {} ms: "
                                 "reconnecting (is it stopped, overloaded, or is its disk "
                                 "stalled?)",
                                 set_.peer, set_.timeout_ms),
             true);
        return true;
    }
    return work;
}

}  // namespace sluice::session
