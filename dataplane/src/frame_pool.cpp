#include "sluice/dataplane/frame_pool.hpp"

#include <fmt/format.h>

#include <rte_errno.h>
#include <rte_memzone.h>

namespace sluice::dataplane {

std::unique_ptr<FramePool> FramePool::create(const std::string& name, uint32_t count,
                                             uint32_t object_bytes, int socket,
                                             std::string& error) {
    std::unique_ptr<FramePool> p(new FramePool);
    p->name_ = name;
    p->count_ = count;
    p->object_bytes_ = object_bytes;
    // One huge-page backed zone on the sending lcore's node: contiguous, so a
    // transport can register it once.
    p->zone_ = rte_memzone_reserve_aligned(
        name.c_str(), static_cast<std::size_t>(count) * object_bytes, socket, 0, 4096);
    if (!p->zone_) {
        error = fmt::format(
            "cannot allocate {} frame buffers of {} KiB ({} MiB) on NUMA node {}: {}. Reserve more "
            "huge pages, or lower mempool.frame_buffers / batch.frame_size",
            count, object_bytes / 1024, static_cast<uint64_t>(count) * object_bytes >> 20, socket,
            rte_strerror(rte_errno));
        return nullptr;
    }
    p->base_ = static_cast<std::byte*>(p->zone_->addr);
    p->free_ = std::make_unique<lockfree::MpmcRing<std::byte*>>(count);
    for (uint32_t i = 0; i < count; ++i) {
        p->free_->try_enqueue(p->base_ + static_cast<std::size_t>(i) * object_bytes);
    }
    return p;
}

FramePool::~FramePool() {
    if (zone_) rte_memzone_free(zone_);
}

uint32_t FramePool::in_use() const {
    return count_ - static_cast<uint32_t>(free_->size());
}

}  // namespace sluice::dataplane
