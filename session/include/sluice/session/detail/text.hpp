// Formatting into fixed buffers, so error paths on the egress lcore never
// allocate. For the session layer and the transports; not a public API.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

#include <fmt/format.h>

namespace sluice::session::detail {

// fmt::format_to_n into `buf`, cut to its size.
template <std::size_t N, class... Args>
std::string_view format_into(char (&buf)[N], fmt::format_string<Args...> f, Args&&... args) {
    const auto r = fmt::format_to_n(buf, N, f, std::forward<Args>(args)...);
    return {buf, std::min<std::size_t>(r.size, N)};
}

}  // namespace sluice::session::detail
