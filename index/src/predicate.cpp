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
        walk(0, Value{}, Value{});
        return !overflow_;
    }

  private:
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
                        if (t != f) walk(t, a, x);
                        pc = f;
                        continue;
                    }
                    if (BPF_OP(i.code) == BPF_JEQ) {
                        path_.push_back({a, i.k, true});
                        walk(t, a, x);
                        path_.pop_back();
                        pc = f;
                    } else {  // JSET: the tested bits are all clear on the false branch
                        walk(t, a, x);
                        path_.push_back({a, i.k, false});
                        walk(f, a, x);
                        path_.pop_back();
                        return;
                    }
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
        auto add = [&](uint64_t h, std::string name) {
            if (std::find_if(keys.begin(), keys.end(),
                             [&](const auto& k) { return k.hash == h; }) == keys.end())
                keys.push_back({h, std::move(name)});
        };
        auto v4name = [](uint32_t a) {
            char s[INET_ADDRSTRLEN];
            const uint32_t be = htonl(a);
            inet_ntop(AF_INET, &be, s, sizeof s);
            return std::string(s);
        };
        auto be4 = [](uint32_t v, std::byte* p) {
            for (int i = 0; i < 4; ++i)
                p[i] = std::byte(v >> (24 - 8 * i));
        };
        auto carrier = [](uint32_t p) { return p == 6 || p == 17 || p == 132; };
        if (type == kEtherTypeIpv4) {
            std::array<std::byte, 4> src{}, dst{};
            const auto s = eq(4, l3 + 12), d = eq(4, l3 + 16), proto = eq(1, l3 + 9);
            if (s) be4(*s, src.data()), add(key_addr4(src.data()), "host " + v4name(*s));
            if (d) be4(*d, dst.data()), add(key_addr4(dst.data()), "host " + v4name(*d));
            if (proto) add(key_proto(uint8_t(*proto)), "proto " + std::to_string(*proto));
            std::optional<uint32_t> sp, dp;
            if (proto && carrier(*proto) && clear_bits(2, l3 + 6, 0x1fff)) {
                sp = eq_behind_ipv4(2, l3, l3);
                dp = eq_behind_ipv4(2, l3, l3 + 2);
                if (sp) add(key_port(uint16_t(*sp)), "port " + std::to_string(*sp));
                if (dp) add(key_port(uint16_t(*dp)), "port " + std::to_string(*dp));
            }
            if (s && d && sp && dp)
                add(key_flow(uint8_t(*proto), endpoint(src.data(), 4, uint16_t(*sp)),
                             endpoint(dst.data(), 4, uint16_t(*dp))),
                    "flow");
        } else if (type == kEtherTypeIpv6) {
            auto addr6 = [&](uint32_t off, std::array<std::byte, 16>& a) {
                for (uint32_t w = 0; w < 4; ++w) {
                    const auto v = eq(4, off + 4 * w);
                    if (!v) return false;
                    be4(*v, a.data() + 4 * w);
                }
                return true;
            };
            auto v6name = [](const std::array<std::byte, 16>& a) {
                char s[INET6_ADDRSTRLEN];
                inet_ntop(AF_INET6, a.data(), s, sizeof s);
                return std::string(s);
            };
            std::array<std::byte, 16> src{}, dst{};
            const bool s = addr6(l3 + 8, src), d = addr6(l3 + 24, dst);
            if (s) add(key_addr6(src.data()), "host " + v6name(src));
            if (d) add(key_addr6(dst.data()), "host " + v6name(dst));
            const auto next = eq(1, l3 + 6);
            if (next) add(key_proto(uint8_t(*next)), "proto " + std::to_string(*next));
            if (next && *next == 44) {
                if (const auto after = eq(1, l3 + 40))
                    add(key_proto(uint8_t(*after)), "proto " + std::to_string(*after));
            }
            std::optional<uint32_t> sp, dp;
            if (next && carrier(*next)) {
                sp = eq(2, l3 + 40);
                dp = eq(2, l3 + 42);
                if (sp) add(key_port(uint16_t(*sp)), "port " + std::to_string(*sp));
                if (dp) add(key_port(uint16_t(*dp)), "port " + std::to_string(*dp));
            }
            if (s && d && sp && dp)
                add(key_flow(uint8_t(*next), endpoint(src.data(), 16, uint16_t(*sp)),
                             endpoint(dst.data(), 16, uint16_t(*dp))),
                    "flow");
        } else if (type == kEtherTypeArp || type == kEtherTypeRarp) {
            std::array<std::byte, 4> a{};
            if (const auto s = eq(4, l3 + 14))
                be4(*s, a.data()), add(key_addr4(a.data()), "host " + v4name(*s));
            if (const auto t = eq(4, l3 + 24))
                be4(*t, a.data()), add(key_addr4(a.data()), "host " + v4name(*t));
        }
        std::sort(keys.begin(), keys.end(),
                  [](const auto& x, const auto& y) { return x.hash < y.hash; });
        out_->push_back(std::move(keys));
    }

    static constexpr uint64_t kMaxSteps = 4'000'000;
    const bpf_insn* insns_;
    uint32_t n_;
    std::vector<Test> path_;
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
    std::sort(paths.begin(), paths.end(), [](const auto& x, const auto& y) {
        return std::lexicographical_compare(
            x.begin(), x.end(), y.begin(), y.end(),
            [](const Key& a, const Key& b) { return a.hash < b.hash; });
    });
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
            if (!bloom_may_contain(b.bloom.data(), b.bloom_blocks, k.hash)) {
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
