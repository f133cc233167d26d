// Frame buffers: fixed-size, huge-page backed, shared by the stages of one
// stream (capture fills, codec compresses into a second one, egress returns
// them once the collector has acknowledged).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "sluice/lockfree/mpmc_ring.hpp"

struct rte_memzone;

namespace sluice::dataplane {

class FramePool {
  public:
    // `socket`: the NUMA node to allocate on (the egress lcore's).
    static std::unique_ptr<FramePool> create(const std::string& name, uint32_t count,
                                             uint32_t object_bytes, int socket, std::string& error);
    ~FramePool();
    FramePool(const FramePool&) = delete;
    FramePool& operator=(const FramePool&) = delete;

    // nullptr when every buffer is in use. Cost: one lock-free ring operation;
    // per frame, not per packet.
    std::byte* get() {
        std::byte* b = nullptr;
        return free_->try_dequeue(b) ? b : nullptr;
    }
    void put(std::byte* buffer) { free_->try_enqueue(buffer); }

    // The memory behind every buffer (one region, for RDMA registration).
    std::byte* base() const { return base_; }
    std::size_t region_bytes() const { return static_cast<std::size_t>(count_) * object_bytes_; }

    const std::string& name() const { return name_; }
    uint32_t count() const { return count_; }
    uint32_t object_bytes() const { return object_bytes_; }
    uint32_t in_use() const;

  private:
    FramePool() = default;
    std::string name_;
    const rte_memzone* zone_ = nullptr;
    std::byte* base_ = nullptr;
    // Free buffers. A ring of our own rather than rte_mempool: its
    // synchronisation is visible to ThreadSanitizer.
    std::unique_ptr<lockfree::MpmcRing<std::byte*>> free_;
    uint32_t count_ = 0;
    uint32_t object_bytes_ = 0;
};

}  // namespace sluice::dataplane
