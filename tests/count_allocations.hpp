// Counts heap allocations made on a thread while it says so: malloc and
// friends are replaced in the program that includes this header (include it
// from exactly one source file of a test executable). Not for sanitizer
// builds, whose runtimes own malloc.
//
//   t_counting = true; ...the code under test...; t_counting = false;
//   EXPECT_EQ(g_allocs.load(std::memory_order_relaxed), 0);
//
// To count on threads that cannot say so themselves (DPDK lcores), set
// g_count_if to a function that says whether the calling thread counts.
#pragma once

#include <atomic>
#include <cstddef>

#include <malloc.h>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<long> g_allocs{0};
thread_local bool t_counting = false;
std::atomic<bool (*)()> g_count_if{nullptr};
void note() {
    // Relaxed: a plain event count, read after the threads that count are done.
    bool (*count_if)() = g_count_if.load(std::memory_order_relaxed);
    if (t_counting || (count_if && count_if())) g_allocs.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) {
    note();
    return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
    note();
    return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
    note();
    return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
    note();
    return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
    note();
    return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
    note();
    *out = __libc_memalign(a, n);
    return *out ? 0 : 12;
}
void free(void* p) {
    __libc_free(p);
}
}
