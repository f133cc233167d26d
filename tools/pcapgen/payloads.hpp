// sluice-pcapgen's application payloads: HTTP requests and responses and TLS
// records for TCP streams, whole DNS messages for UDP datagrams.
#pragma once

#include <cstddef>
#include <string>

#include "bytes.hpp"
#include "rng.hpp"

namespace sluice::pcapgen {

// A TCP direction carries whole messages back to back: a text head (HTTP
// headers and text bodies, a TLS record header) followed by random bytes (TLS
// ciphertext, binary HTTP bodies). Segments never run past the end of a
// message, as a sender that writes one message and then waits does.
struct Message {
    std::string head;
    size_t random = 0;
    size_t size() const { return head.size() + random; }
};

Message http_request(Rng& rng);
Message http_response(Rng& rng);

// A TLS 1.2/1.3 application-data record: the header, then ciphertext.
Message tls_record(Rng& rng, bool from_client);

// One complete DNS message for a UDP payload of about `room` bytes: a query
// from the client, from the server an A/AAAA answer, or, when the frame has
// room for more, a TXT answer (DKIM keys, SPF) that fills it exactly.
Bytes dns_message(Rng& rng, bool from_client, size_t room);

}  // namespace sluice::pcapgen
