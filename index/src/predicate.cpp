#include "sluice/index/predicate.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include <arpa/inet.h>
#include <pcap/pcap.h>

#include "sluice/index/bloom.hpp"
#include "sluice/index/keys.hpp"
#include "sluice/index/packet.hpp"

namespace sluice::index {
namespace {

// What the accumulator (A) or index register (X) holds on a path.
struct Value {
    enum Kind : uint8_t { Unknown, Load, Msh } kind = Unknown;
    uint8_t width = 0;      // Load: bytes loaded
    bool indirect = false;  // Load: at X + k, X = 4 * (byte msh_k & 0xf)
    uint32_t k = 0;         // Load: the offset; Msh: the byte the header length is read from
    uint32_t msh_k = 0;
};

struct Test {
    Value load;
    uint32_t k;
    bool equal;  // true: load == k; false: (load & k) == 0 (a jset not taken)
};

class Walker {
  public:
    explicit Walker(const bpf_program& p) : insns_(p.bf_insns), n_(p.bf_len) {}

    // False when the program is too large to follow.
    bool run(std::vector<std::vector<Predicate::Key>>& out) {
        out_ = &out;
        // Depth first with a stack of branches not taken yet, not recursion:
        // a program may branch thousands of times along one path.
        pending_.push_back({0, Value{}, Value{}, 0, std::nullopt});
        while (!pending_.empty() && !overflow_) {
            Branch b = pending_.back();
            pending_.pop_back();
            path_.resize(b.depth);
            if (b.test) path_.push_back(*b.test);
            walk(b.pc, b.a, b.x);
        }
        return !overflow_;
    }

  private:
    // A branch to follow later: where, the registers, and the path's tests
    // up to it (the first `depth` of path_, and `test` if the branch adds one).
    struct Branch {
        uint32_t pc;
        Value a, x;
        std::size_t depth;
        std::optional<Test> test;
    };

    void later(uint32_t pc, const Value& a, const Value& x, std::optional<Test> test) {
        if (pending_.size() > kMaxPending) {
            overflow_ = true;
            return;
        }
        pending_.push_back({pc, a, x, path_.size(), test});
    }

    // Follows one path from pc to its return, leaving the other branch of
    // each jump for later.
    void walk(uint32_t pc, Value a, Value x) {
        while (!overflow_) {
            if (pc >= n_ || ++steps_ > kMaxSteps) {
                overflow_ = true;  // not a valid program, or too large: give up, narrow nothing
                return;
            }
            const bpf_insn& i = insns_[pc];
            switch (BPF_CLASS(i.code)) {
                case BPF_LD:
                    if (BPF_MODE(i.code) == BPF_ABS) {
                        a = load(i.code, i.k, false, 0);
                    } else if (BPF_MODE(i.code) == BPF_IND && x.kind == Value::Msh) {
                        a = load(i.code, i.k, true, x.k);
                    } else {
                        a = Value{};
                    }
                    break;
                case BPF_LDX:
                    if (BPF_MODE(i.code) == BPF_MSH) {
                        x = Value{Value::Msh, 1, false, i.k, 0};
                    } else {
                        x = Value{};
                    }
                    break;
                case BPF_ST:
                case BPF_STX:
                    break;
                case BPF_ALU:
                    a = Value{};
                    break;
                case BPF_MISC:
                    if (BPF_MISCOP(i.code) == BPF_TAX)
                        x = Value{};
                    else
                        a = Value{};
                    break;
                case BPF_RET:
                    if (BPF_RVAL(i.code) != BPF_K || i.k != 0) accept();
                    return;
                case BPF_JMP: {
                    if (BPF_OP(i.code) == BPF_JA) {
                        pc += 1 + i.k;
                        continue;
                    }
                    const uint32_t t = pc + 1 + i.jt, f = pc + 1 + i.jf;
                    const bool known = BPF_SRC(i.code) == BPF_K && a.kind == Value::Load;
                    if (t == f || !known ||
                        (BPF_OP(i.code) != BPF_JEQ && BPF_OP(i.code) != BPF_JSET)) {
                        if (t != f) later(f, a, x, std::nullopt);
                        pc = t;
                        continue;
                    }
                    if (BPF_OP(i.code) == BPF_JEQ) {
                        later(f, a, x, std::nullopt);
                        path_.push_back({a, i.k, true});
                    } else {  // JSET: the tested bits are all clear on the false branch
                        later(f, a, x, Test{a, i.k, false});
                    }
                    pc = t;
                    continue;
                }
                default:
                    a = Value{};
                    break;
            }
            ++pc;
        }
    }

    static Value load(uint16_t code, uint32_t k, bool indirect, uint32_t msh_k) {
        const uint8_t w = BPF_SIZE(code) == BPF_W ? 4 : BPF_SIZE(code) == BPF_H ? 2 : 1;
        return Value{Value::Load, w, indirect, k, msh_k};
    }

    std::optional<uint32_t> eq(uint8_t width, uint32_t off) const {
        for (const Test& t : path_)
            if (t.equal && t.load.kind == Value::Load && !t.load.indirect &&
                t.load.width == width && t.load.k == off)
                return t.k;
        return std::nullopt;
    }
    std::optional<uint32_t> eq_behind_ipv4(uint8_t width, uint32_t l3, uint32_t off) const {
        for (const Test& t : path_)
            if (t.equal && t.load.kind == Value::Load && t.load.indirect && t.load.msh_k == l3 &&
                t.load.width == width && t.load.k == off)
                return t.k;
        return std::nullopt;
    }
    bool clear_bits(uint8_t width, uint32_t off, uint32_t mask) const {
        for (const Test& t : path_)
            if (!t.equal && t.load.kind == Value::Load && !t.load.indirect &&
                t.load.width == width && t.load.k == off && (t.k & mask) == mask)
                return true;
        return false;
    }

    // The keys this accepting path requires, where the parser reads the
    // same bytes: the EtherType chain fixes where the IP header is.
    void accept() {
        if (out_->size() >= Predicate::kMaxPaths) {
            overflow_ = true;
            return;
        }
        std::vector<Predicate::Key> keys;
        uint32_t l3 = 0, type = 0;
        for (int tags = 0; tags <= kMaxVlanTags; ++tags) {
            const auto t = eq(2, 12 + 4u * tags);
            if (!t) break;
            if (*t == 0x8100 || *t == 0x88a8 || *t == 0x9100) continue;
            type = *t;
            l3 = 14 + 4u * tags;
            break;
        }
        auto add_key = [&](Predicate::Key k) {
            if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(std::move(k));
        };
        auto add = [&](uint64_t h, std::string name) { add_key({h, -1, std::move(name)}); };
        auto add_proto = [&](uint32_t p) {
            add_key({0, int(p & 0xff), "proto " + std::to_string(p & 0xff)});
        };
        auto add_port = [&](uint32_t p) {
            add(key_port(uint16_t(p)), "port " + std::to_string(p & 0xffff));
        };
        auto v4 = [&](uint32_t a) {
            std::array<std::byte, 4> b;
            for (int i = 0; i < 4; ++i)
                b[i] = std::byte(a >> (24 - 8 * i));
            char s[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, b.data(), s, sizeof s);
            add(key_addr4(b.data()), std::string("host ") + s);
        };
        auto carrier = [](uint32_t p) { return p == 6 || p == 17 || p == 132; };
        if (type == kEtherTypeIpv4) {
            const auto proto = eq(1, l3 + 9);
            if (const auto s = eq(4, l3 + 12)) v4(*s);
            if (const auto d = eq(4, l3 + 16)) v4(*d);
            if (proto) add_proto(*proto);
            // Ports count behind the protocol and first-fragment checks a
            // compiled `port` makes, as the parser reads them only there.
            if (proto && carrier(*proto) && clear_bits(2, l3 + 6, 0x1fff)) {
                if (const auto sp = eq_behind_ipv4(2, l3, l3)) add_port(*sp);
                if (const auto dp = eq_behind_ipv4(2, l3, l3 + 2)) add_port(*dp);
            }
        } else if (type == kEtherTypeIpv6) {
            auto v6 = [&](uint32_t off) {
                std::array<std::byte, 16> a;
                for (uint32_t w = 0; w < 4; ++w) {
                    const auto v = eq(4, off + 4 * w);
                    if (!v) return;
                    for (uint32_t i = 0; i < 4; ++i)
                        a[4 * w + i] = std::byte(*v >> (24 - 8 * i));
                }
                char s[INET6_ADDRSTRLEN];
                inet_ntop(AF_INET6, a.data(), s, sizeof s);
                add(key_addr6(a.data()), std::string("host ") + s);
            };
            v6(l3 + 8);
            v6(l3 + 24);
            const auto next = eq(1, l3 + 6);
            if (next) add_proto(*next);
            if (next && *next == 44) {
                if (const auto after = eq(1, l3 + 40)) add_proto(*after);
            }
            if (next && carrier(*next)) {
                if (const auto sp = eq(2, l3 + 40)) add_port(*sp);
                if (const auto dp = eq(2, l3 + 42)) add_port(*dp);
            }
        } else if (type == kEtherTypeArp || type == kEtherTypeRarp) {
            if (const auto s = eq(4, l3 + 14)) v4(*s);
            if (const auto t = eq(4, l3 + 24)) v4(*t);
        }
        std::sort(keys.begin(), keys.end());
        out_->push_back(std::move(keys));
    }

    static constexpr uint64_t kMaxSteps = 4'000'000;
    static constexpr std::size_t kMaxPending = 1'000'000;
    const bpf_insn* insns_;
    uint32_t n_;
    std::vector<Test> path_;
    std::vector<Branch> pending_;
    std::vector<std::vector<Predicate::Key>>* out_ = nullptr;
    uint64_t steps_ = 0;
    bool overflow_ = false;
};

}  // namespace

Predicate Predicate::from_bpf(const bpf_program& program) {
    Predicate p;
    std::vector<std::vector<Key>> paths;
    if (!Walker(program).run(paths)) return p;
    // One path without keys lets any block through: no narrowing at all.
    for (const auto& keys : paths)
        if (keys.empty()) return p;
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    // A program that accepts nothing (`tcp and udp`) has no path: no block
    // can match, and an empty set of alternatives says so.
    p.all_ = false;
    p.any_ = std::move(paths);
    return p;
}

bool Predicate::may_match(const BlockRecord& b) const {
    if (all_ || (b.flags & block_flag::kOpaque)) return true;
    for (const auto& keys : any_) {
        bool all_in = true;
        for (const Key& k : keys) {
            const bool in = k.proto >= 0
                                ? b.protocols.has(uint8_t(k.proto))
                                : bloom_may_contain(b.bloom.data(), b.bloom_blocks, k.hash);
            if (!in) {
                all_in = false;
                break;
            }
        }
        if (all_in) return true;
    }
    return false;
}

std::string Predicate::describe() const {
    if (all_) return "(any block: the filter names nothing the index holds)";
    if (any_.empty()) return "(no block: the filter accepts no packet)";
    std::string s;
    for (std::size_t i = 0; i < any_.size(); ++i) {
        if (i) s += " | ";
        if (s.size() > 400) {
            s += "... (" + std::to_string(any_.size()) + " alternatives)";
            break;
        }
        for (std::size_t j = 0; j < any_[i].size(); ++j)
            s += (j ? " & " : "") + any_[i][j].name;
    }
    return s;
}

}  // namespace sluice::index
