// The TCP listener under --max-memory: every receive buffer is charged to one
// budget; a connection that cannot grow waits (not read) until memory comes back.
#include "listener_impl.hpp"

namespace sluice::tcp {
namespace {

using namespace listener_detail;

}  // namespace

// ---- --max-memory: receive buffers within one budget -------------------------

bool TcpListener::Impl::grow_in(Connection& c, std::size_t capacity, bool reading) {
    if (capacity <= c.in.capacity()) return true;
    if (cfg.max_memory) {
        // Reading leaves room for one largest frame (and its header).
        const uint64_t reserve = reading ? uint64_t{cfg.max_frame_bytes} + (1u << 20) : 0;
        const uint64_t limit = cfg.max_memory > reserve ? cfg.max_memory - reserve : 0;
        if (mem_used + (capacity - c.in.capacity()) > limit) {
            give_back_memory(&c);
            if (mem_used + (capacity - c.in.capacity()) > limit) return false;
        }
    }
    const std::size_t more = capacity - c.in.capacity();
    c.in.reserve_exact(capacity);
    c.charged += more;
    mem_used += more;
    return true;
}

void TcpListener::Impl::uncharge(Connection& c) {
    mem_used -= c.charged;
    c.charged = 0;
}

void TcpListener::Impl::give_back_memory(const Connection* asking) {
    for (auto& [id, cp] : conns) {
        Connection& o = *cp;
        if (&o == asking || o.closed || o.mem_waiting || !o.charged || o.in_off != o.in.size())
            continue;
        uncharge(o);
        o.in.release();
        o.in_off = 0;
    }
}

void TcpListener::Impl::wait_for_memory(Connection& c, std::size_t capacity) {
    c.mem_wanted = capacity;
    if (c.mem_waiting) return;
    c.mem_waiting = true;
    mem_waiters.push_back(c.id);
    arm(c);  // not read: the socket's buffers fill and TCP stops the sender
    h.on_memory_wait();
}

void TcpListener::Impl::serve_memory_waiters(uint64_t now) {
    while (!mem_waiters.empty()) {
        Connection* c = find(mem_waiters.front());
        if (!c || !c->mem_waiting) {
            mem_waiters.pop_front();
            continue;
        }
        // The oldest first: a later, smaller one does not overtake it.
        if (!grow_in(*c, c->mem_wanted, /*reading=*/false)) return;
        mem_waiters.pop_front();
        c->mem_waiting = false;
        c->last_rx_ns = now;  // it was silent because it was not read
        arm(*c);
        // OpenSSL may hold decrypted bytes no epoll event announces.
        if (tls_pending(*c)) on_readable(*c, now);
    }
}

}  // namespace sluice::tcp
