// MpscRing<T>: bounded multi-producer single-consumer ring, for fan-in where one SpscRing per
// producer (polled round-robin, the default in sluice) does not fit.
//
// Producers claim runs of positions with one compare-and-swap and publish each element through
// its slot's lap flag (detail/multi_producer.hpp); they never wait for one another. The consumer
// reads slots in position order and stops at the first one not yet written, so the elements of
// each producer come out in the order that producer enqueued them. A producer preempted between
// its claim and its writes holds back the consumer (not the other producers) until it resumes.
//
// Capacity is rounded up to a power of two. Like SpscRing, the state has no pointers in it and
// can live in caller-supplied (shared) memory.
//
// One template with MpmcRing (detail/multi_producer_ring.hpp): the same producers, control
// block and slots; this is its single-consumer policy.
#pragma once

#include "sluice/lockfree/detail/multi_producer_ring.hpp"

namespace sluice::lockfree {

template <class T>
using MpscRing = detail::MultiProducerRing<T, detail::SingleConsumer>;

}  // namespace sluice::lockfree
