#include "sluice/dataplane/frame_pool.hpp"

#include <fmt/format.h>

namespace sluice::dataplane {

std::unique_ptr<FramePool> FramePool::create(const std::string& name, uint32_t count,
                                             uint32_t object_bytes, int socket, bool huge_pages,
                                             std::string& error) {
    std::unique_ptr<FramePool> p(new FramePool);
    p->name_ = name;
    p->count_ = count;
    p->object_bytes_ = object_bytes;
    // One region on the sending lcore's node: contiguous, so a transport can
    // register it once.
    mempool::ObjectPoolOptions o;
    o.name = fmt::format("frame pool {}", name);
    o.object_size = object_bytes;
    o.capacity = count;
    o.cache_size = cache_size_for(count);
    o.page_size = huge_pages ? mempool::PageSize::huge_2m : mempool::PageSize::small;
    o.numa_node = socket;
    auto pool = mempool::ObjectPool::create(o);
    if (!pool) {
        error = fmt::format(
            "cannot allocate {} frame buffers of {} KiB ({} MiB) on NUMA node {}: {}. Lower "
            "mempool.frame_buffers / batch.frame_size",
            count, object_bytes / 1024, static_cast<uint64_t>(count) * object_bytes >> 20, socket,
            pool.error().message);
        return nullptr;
    }
    p->pool_ = std::move(pool).value();
    return p;
}

std::string FramePool::page_size() const {
    return std::string(mempool::to_string(pool_->region().page_size()));
}

uint32_t FramePool::in_use() const {
    return static_cast<uint32_t>(pool_->counters().in_use);
}

}  // namespace sluice::dataplane
