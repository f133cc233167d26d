// Not for inclusion outside rdma/src: the RDMA listener's state, shared by
// its two halves: listener.cpp (the rdma_cm side: requests, events,
// devices, teardown) and listener_connection.cpp (one connection's queue
// pair: handshake messages, ring writes, credits, closing).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "sluice/rdma/listener.hpp"
#include "sluice/session/byte_buffer.hpp"

namespace sluice::rdma::detail {

using session::CloseCause;
using session::ConnectionId;

inline constexpr uint32_t kSendBuffers = 16;  // Welcome, Credit and Reject messages in flight
inline constexpr uint32_t kExtraRecvs = 4;    // SENDs besides the ring's writes (the Proof)
inline constexpr uint64_t kCloseGraceNs = 200'000'000;  // a Reject gets this long to leave
inline constexpr uint64_t kWrRecv = 1ull << 63;

// A device's completion channel, shared by its connections. Protection
// domains are not shared: each connection has its own, so no queue pair can
// write into another connection's ring whatever rkey it tries.
struct Device {
    ibv_context* ctx = nullptr;
    ibv_comp_channel* channel = nullptr;
};

enum class ConnState : uint8_t { AwaitEstablished, AwaitProof, Streaming, Closing };

struct RConn {
    ConnectionId id = 0;
    rdma_cm_id* cm = nullptr;
    std::string peer;
    Device* dev = nullptr;
    ibv_pd* pd = nullptr;  // this connection's alone
    std::string source;    // the peer's address without its port (per-source limits)
    ConnState state = ConnState::AwaitEstablished;
    bool established = false;
    ibv_cq* cq = nullptr;
    bool qp = false;
    std::byte* ring = nullptr;
    std::size_t ring_bytes = 0;  // charged to --max-memory while held
    ibv_mr* ring_mr = nullptr;
    std::vector<std::byte> ctl;  // recv buffers, then send buffers
    ibv_mr* ctl_mr = nullptr;
    uint32_t recvs = 0;
    uint32_t sends_in_flight = 0;
    uint32_t next_send = 0;
    std::array<std::byte, kRequestSize> request{};
    std::array<std::byte, kAcceptSize> accept{};
    ConnectRequest rq;
    uint64_t accepted_ns = 0;
    uint64_t consumed = 0;    // slots handed to on_frame
    uint64_t released = 0;    // slots given back to the sender
    bool credit_due = false;  // a Credit could not be sent (no send buffer): send it later
    uint64_t ack = 0;
    uint64_t closing_deadline = 0;
    bool reported = false;  // on_closed was called
};

}  // namespace sluice::rdma::detail

namespace sluice::rdma {

using detail::ConnState;
using detail::Device;
using detail::RConn;

struct RdmaListener::Impl {
    using CloseCause = session::CloseCause;
    using ConnectionId = session::ConnectionId;

    ListenerConfig cfg;
    session::ReceiverHandler& h;
    RdmaListener& self;
    const session::Keyring& keys() const {
        static const session::Keyring none;
        return cfg.keys ? *cfg.keys : none;
    }
    wire::FrameReader reader;
    session::ByteBuffer scratch;
    rdma_event_channel* channel = nullptr;
    rdma_cm_id* listen_id = nullptr;
    int epfd = -1;
    uint16_t port = 0;
    std::map<ibv_context*, std::unique_ptr<Device>> devices;
    std::unordered_map<ConnectionId, std::unique_ptr<RConn>> conns;
    // Connections before their Welcome, in total and by source address.
    uint32_t pending = 0;
    uint64_t ring_bytes_held = 0;  // --max-memory: rings registered now
    std::unordered_map<std::string, uint32_t> pending_by_source;
    std::vector<ConnectionId> doomed;  // torn down after the event batch (events acknowledged)

    Impl(const ListenerConfig& c, session::ReceiverHandler& handler, RdmaListener& s)
        : cfg(c),
          h(handler),
          self(s),
          reader(wire::ReaderLimits{c.max_frame_bytes, c.max_frame_bytes, wire::kMaxSnaplen}) {
        scratch.resize(c.max_frame_bytes);
    }
    ~Impl();

    Device* device(ibv_context* ctx);
    void on_connect_request(rdma_cm_id* id, const void* pd, std::size_t len, uint64_t now);
    void reject_request(rdma_cm_id* id, ConnectionId conn, RejectReason reason,
                        const std::string& text, CloseCause cause, const std::string& peer);
    bool on_write(RConn& c, const ibv_wc& w, uint64_t now);
    bool setup(RConn& c);       // before the accept: queue pair and message buffers
    bool setup_ring(RConn& c);  // after the proof: the ring the sender writes into
    void count_pending(RConn& c, int delta);
    void make_room_for_pending(uint64_t now);
    bool post_recv(RConn& c, uint32_t i);
    bool post_message(RConn& c, const Message& m);
    void poll_cq(RConn& c, uint64_t now);
    void on_message(RConn& c, std::span<const std::byte> bytes, uint64_t now);
    void finish_batch(RConn& c);
    void begin_close(RConn& c, CloseCause cause, const std::string& why, bool reject,
                     RejectReason reason, uint64_t now);
    void teardown(RConn& c);
    void reap();
    RConn* find(ConnectionId id) {
        auto it = conns.find(id);
        return it == conns.end() ? nullptr : it->second.get();
    }
};

}  // namespace sluice::rdma
