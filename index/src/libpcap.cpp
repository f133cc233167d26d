#include "libpcap.hpp"

#include <type_traits>

#include <dlfcn.h>

namespace sluice::index {

namespace {

// The soname Debian's libpcap0.8 installs (the ABI the headers describe).
constexpr const char* kSoname = "libpcap.so.0.8";

}  // namespace

const Libpcap* libpcap(std::string* error) {
    static std::string failure;
    static const Libpcap* const api = []() -> const Libpcap* {
        void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            failure = std::string(
                          "cannot load libpcap for the filter (apt-get install "
                          "libpcap0.8): ") +
                      ::dlerror();
            return nullptr;
        }
        static Libpcap l;
        bool ok = true;
        auto sym = [&](auto& f, const char* name) {
            f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(::dlsym(h, name));
            ok = ok && f;
        };
        sym(l.open_dead, "pcap_open_dead");
        sym(l.compile, "pcap_compile");
        sym(l.geterr, "pcap_geterr");
        sym(l.close, "pcap_close");
        sym(l.freecode, "pcap_freecode");
        sym(l.offline_filter, "pcap_offline_filter");
        if (!ok) {
            failure =
                std::string(kSoname) + " lacks a function the filter needs: upgrade libpcap0.8";
            return nullptr;
        }
        return &l;
    }();
    if (!api && error) *error = failure;
    return api;
}

}  // namespace sluice::index
