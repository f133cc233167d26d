// Out-of-line parts of the lock-free rings.
namespace sluice::lockfree {}
