// The devices a port may name: PCI addresses and DPDK virtual devices.
#include <string>

#include "sluice/config/config.hpp"

namespace sluice::config {
namespace {

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

bool is_pci_address(std::string_view s) {
    // [DDDD:]BB:DD.F
    auto hex_run = [&](std::size_t at, std::size_t n) {
        if (at + n > s.size()) return false;
        for (std::size_t i = 0; i < n; ++i) {
            if (!is_hex(s[at + i])) return false;
        }
        return true;
    };
    std::size_t i = 0;
    if (s.size() == 12) {
        if (!hex_run(0, 4) || s[4] != ':') return false;
        i = 5;
    } else if (s.size() != 7) {
        return false;
    }
    return hex_run(i, 2) && s[i + 2] == ':' && hex_run(i + 3, 2) && s[i + 5] == '.' &&
           s[i + 6] >= '0' && s[i + 6] <= '7';
}

bool is_vdev_string(std::string_view s, std::string* why) {
    auto fail = [&](std::string w) {
        if (why) *why = std::move(w);
        return false;
    };
    const std::string_view name = device_name(s);
    if (name.substr(0, 4) != "net_") {
        return fail("a vdev name starts with net_, e.g. net_pcap0");
    }
    if (name.size() == 4) return fail("the driver name is missing after net_");
    for (char ch : name) {
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_')) {
            return fail("the vdev name may hold only letters, digits and _");
        }
    }
    std::size_t start = name.size();
    while (start < s.size()) {
        ++start;  // the comma
        auto end = s.find(',', start);
        if (end == std::string_view::npos) end = s.size();
        const auto arg = s.substr(start, end - start);
        const auto eq = arg.find('=');
        if (arg.empty()) return fail("empty argument between commas");
        if (eq == 0 || eq == std::string_view::npos) {
            return fail("argument '" + std::string(arg) + "' is not key=value");
        }
        start = end;
    }
    return true;
}

std::string_view device_name(std::string_view port_name) {
    return port_name.substr(0, port_name.find(','));
}

}  // namespace sluice::config
