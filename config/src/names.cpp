// Names of the configuration's enumerations, and the edit distance behind
// "did you mean".
#include <algorithm>
#include <vector>

#include "sluice/config/config.hpp"

namespace sluice::config {

std::string_view to_string(Mode m) {
    return m == Mode::Pipeline ? "pipeline" : "run-to-completion";
}
std::string_view to_string(Overflow o) {
    return o == Overflow::Drop ? "drop" : "backpressure";
}
std::string_view to_string(CodecType t) {
    switch (t) {
        case CodecType::None:
            return "none";
        case CodecType::Lz4:
            return "lz4";
        case CodecType::Zstd:
            return "zstd";
    }
    return "?";
}
std::string_view to_string(EgressType t) {
    switch (t) {
        case EgressType::Tcp:
            return "tcp";
        case EgressType::Rdma:
            return "rdma";
        case EgressType::File:
            return "file";
        case EgressType::Null:
            return "null";
        case EgressType::JetStream:
            return "jetstream";
    }
    return "?";
}
std::string_view to_string(Decap d) {
    switch (d) {
        case Decap::Match:
            return "match";
        case Decap::Strip:
            return "strip";
        case Decap::None:
            break;
    }
    return "none";
}

std::string_view to_string(Timestamps t) {
    return t == Timestamps::Hardware ? "hardware" : "software";
}
std::string_view to_string(SimdLevel l) {
    switch (l) {
        case SimdLevel::Auto:
            return "auto";
        case SimdLevel::Scalar:
            return "scalar";
        case SimdLevel::Sse42:
            return "sse4.2";
        case SimdLevel::Avx2:
            return "avx2";
        case SimdLevel::Avx512:
            return "avx512";
    }
    return "?";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    // Optimal string alignment distance: insertions, deletions, substitutions
    // and transpositions of neighbours ("fiel" -> "feil") each cost one.
    const std::size_t w = b.size() + 1;
    std::vector<std::size_t> d((a.size() + 1) * w);
    for (std::size_t i = 0; i <= a.size(); ++i)
        d[i * w] = i;
    for (std::size_t j = 0; j <= b.size(); ++j)
        d[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            std::size_t v = std::min(
                {d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                v = std::min(v, d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    return d[a.size() * w + b.size()];
}

}  // namespace sluice::config
