#include "libpcap.hpp"

#include "sluice/report/shared_library.hpp"

namespace sluice::index {

const Libpcap* libpcap(std::string* error) {
    static std::string failure;
    static const Libpcap* const api = []() -> const Libpcap* {
        static Libpcap l;
        using report::symbol;
        // The soname Debian's libpcap0.8 installs (the ABI the headers describe).
        failure = report::load_shared_library(
            "libpcap.so.0.8", "libpcap0.8",
            {symbol(l.open_dead, "pcap_open_dead"), symbol(l.compile, "pcap_compile"),
             symbol(l.geterr, "pcap_geterr"), symbol(l.close, "pcap_close"),
             symbol(l.freecode, "pcap_freecode"), symbol(l.offline_filter, "pcap_offline_filter")});
        if (!failure.empty()) failure = "the filter needs libpcap: " + failure;
        return failure.empty() ? &l : nullptr;
    }();
    if (!api && error) *error = failure;
    return api;
}

}  // namespace sluice::index
