// Which blocks a tcpdump filter can match, from the index alone.
//
// The filter is compiled by libpcap; the analysis reads the BPF program, not
// the text, so it sees exactly what libpcap made of the filter (qualifier
// inheritance, `vlan`, precedence) and cannot be misled by syntax. Every path
// through the program that accepts a packet is followed, collecting the
// comparisons the packet must pass on it (`ld [26]; jeq #0x0a000001`). Those
// that test a field at the place the index's packet parser reads it (an
// IPv4/IPv6/ARP address, a port behind the protocol and fragment checks, the
// protocol) become index keys; everything else on the path is ignored.
//
// A block is a candidate when, for some accepting path, its filter holds
// every key of that path. A path with no key (`not host X`, `len > 100`,
// `ether host ...`) makes every block a candidate: the analysis only ever
// drops blocks no packet of which the program can accept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/index/format.hpp"

struct bpf_program;

namespace sluice::index {

class Predicate {
  public:
    // Every block is a candidate.
    Predicate() = default;

    // The keys the program's accepting paths require; a program too large
    // to follow (more than kMaxPaths accepting paths) narrows nothing.
    static Predicate from_bpf(const bpf_program& program);
    static constexpr std::size_t kMaxPaths = 4096;

    bool narrows() const { return !all_; }
    // False only when no packet of the block can pass the filter.
    bool may_match(const BlockRecord& b) const;
    // The alternatives as key names, for --verbose: "host 10.0.0.1 & port 80 | ...".
    std::string describe() const;

    struct Key {
        uint64_t hash = 0;  // an address or port key (keys.hpp), looked up in the filter
        int proto = -1;     // or else an IP protocol, looked up in the block's ProtocolSet
        std::string name;
        bool operator==(const Key& o) const { return hash == o.hash && proto == o.proto; }
        bool operator<(const Key& o) const {
            return proto != o.proto ? proto < o.proto : hash < o.hash;
        }
    };
    // Any one of these must be wholly in a block's filter.
    const std::vector<std::vector<Key>>& alternatives() const { return any_; }

  private:
    bool all_ = true;
    std::vector<std::vector<Key>> any_;
};

}  // namespace sluice::index
