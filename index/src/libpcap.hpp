// libpcap, loaded with dlopen the first time a query compiles a filter
// (pcap_compile and pcap_offline_filter are all the index uses of it).
// Linked, libpcap and the libraries it pulls in (libdbus among them) would be
// loaded and relocated at every start of every program built on the index,
// sluice-collector's included, which needs them only when GET /query asks
// for a filter (docs/performance.md, "Start-up and size").
#pragma once

#include <string>

#include <pcap/pcap.h>

namespace sluice::index {

struct Libpcap {
    decltype(&::pcap_open_dead) open_dead;
    decltype(&::pcap_compile) compile;
    decltype(&::pcap_geterr) geterr;
    decltype(&::pcap_close) close;
    decltype(&::pcap_freecode) freecode;
    decltype(&::pcap_offline_filter) offline_filter;
};

// Loads libpcap once (thread-safe); nullptr, and the reason with what to
// install in `error` (when not null), when it cannot.
const Libpcap* libpcap(std::string* error);

}  // namespace sluice::index
