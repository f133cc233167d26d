// MpmcRing<T>: bounded multi-producer multi-consumer ring of pointers or small handles. It is
// the shared store behind mempool's ObjectPool (the per-thread caches move objects in and out of
// it in bulk); pipeline stages use SpscRing.
//
// Producers claim positions with one compare-and-swap and publish through the slots' lap flags,
// as in MpscRing. A consumer reads the run of ready slots at the current tail and then claims it
// with a compare-and-swap on tail; if another consumer got there first the copy is discarded and
// the loop starts again. Nobody waits for a slower thread: a producer preempted between its
// claim and its writes only makes consumers see fewer elements until it resumes.
//
// Elements must fit one 64-bit word with their lap flag (pointers, or at most 4 bytes): a
// consumer reads a slot before it owns it, which is only safe when the read is one atomic load.
//
// One template with MpscRing (detail/multi_producer_ring.hpp): the same producers, control
// block and slots; this is its multi-consumer policy.
#pragma once

#include "sluice/lockfree/detail/multi_producer_ring.hpp"

namespace sluice::lockfree {

template <class T>
using MpmcRing = detail::MultiProducerRing<T, detail::MultiConsumer>;

}  // namespace sluice::lockfree
