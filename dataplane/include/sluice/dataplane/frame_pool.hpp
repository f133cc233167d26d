// Frame buffers: fixed-size, carved from one huge-page region on the NUMA
// node of the lcore that sends them, shared by the stages of one stream
// (capture fills, codec compresses into a second one, egress returns them
// once the collector has acknowledged).
//
// A mempool::ObjectPool underneath: each lcore that touches the pool gets and
// puts through a cache of its own (FramePool::Cache), shared by the stages of
// that lcore. In run-to-completion mode one lcore gets and puts, so buffers go
// round in its cache and never touch the shared store; in pipeline mode the
// capture lcore's cache refills in bulk and the egress lcore's flushes in
// bulk. Either way it is one operation per frame, not per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "sluice/mempool/object_pool.hpp"

namespace sluice::dataplane {

class FramePool {
  public:
    using Cache = mempool::ObjectPool::Cache;

    // `socket`: the NUMA node to allocate on (the egress lcore's).
    // `huge_pages`: back the buffers with 2 MB pages (falling back to smaller
    // ones with one warning when they are short); false takes small pages
    // from the start, for EAL without huge pages (--no-huge).
    static std::unique_ptr<FramePool> create(const std::string& name, uint32_t count,
                                             uint32_t object_bytes, int socket, bool huge_pages,
                                             std::string& error);
    FramePool(const FramePool&) = delete;
    FramePool& operator=(const FramePool&) = delete;

    // Buffers one lcore keeps: at most frame_buffers / 16, and at most 8, so
    // that what caches hold back stays a small part of the pool (0 for pools
    // below 16 buffers: every get and put goes to the shared store).
    static uint32_t cache_size_for(uint32_t count) { return count / 16 < 8 ? count / 16 : 8; }

    // A cache for one lcore (used by that lcore only; destroy it before the pool).
    std::unique_ptr<Cache> make_cache() { return std::make_unique<Cache>(*pool_); }

    // nullptr when every buffer is in use (or held in other lcores' caches).
    // Cost: from the cache, a few instructions; per frame, not per packet.
    std::byte* get(Cache& c) { return static_cast<std::byte*>(pool_->get(c)); }
    void put(Cache& c, std::byte* buffer) { pool_->put(c, buffer); }
    // Hands every buffer the cache holds back to the shared store, for an
    // lcore that only returns buffers (pipeline mode's egress) when it drains.
    void flush(Cache& c) { pool_->flush(c); }

    // The memory behind every buffer (one region, for RDMA registration).
    std::byte* base() const { return pool_->region().base(); }
    std::size_t region_bytes() const { return static_cast<std::size_t>(count_) * object_bytes_; }
    // The page size that backs the buffers ("2 MB", or "4 KB" without huge pages).
    std::string page_size() const;

    const std::string& name() const { return name_; }
    uint32_t count() const { return count_; }
    uint32_t object_bytes() const { return object_bytes_; }
    // Buffers handed out and not yet returned (those in caches are free).
    // Control path: sums the caches' counters.
    uint32_t in_use() const;

  private:
    FramePool() = default;
    std::string name_;
    std::unique_ptr<mempool::ObjectPool> pool_;
    uint32_t count_ = 0;
    uint32_t object_bytes_ = 0;
};

}  // namespace sluice::dataplane
