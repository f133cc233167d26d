// StreamReader: one sluice stream's messages, read by the collector that
// owns it through a durable pull consumer ("sluice_<group>_<stream id>",
// filtered on the stream's subject, acknowledging all up to the one named).
// The owner opens it at the position its lease holds: a consumer left by an
// earlier owner is replaced, since it may stand elsewhere (and the open
// fails, to be tried again, while one stands in the way). The stream's
// retention is by limits, so removing a consumer removes no message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nats/nats.h>

#include "sluice/report/result.hpp"

namespace sluice::jetstream {

struct ReaderOptions {
    std::string stream;   // the JetStream stream (StreamSpec::name)
    std::string durable;  // the consumer's name
    std::string subject;  // the sluice stream's subject
    uint64_t after = 0;   // read from position after + 1 (0: from the first message)
    // A message delivered but not acknowledged within this is delivered again
    // (a copy the collector recognises and discards).
    uint32_t ack_wait_s = 60;
    uint32_t max_ack_pending = 20000;  // delivered, unacknowledged messages at most
};

// True when `ci` is the consumer StreamReader::open asked for, as it was
// created: it starts after position `after` and has delivered nothing yet. A
// consumer an earlier owner left (its removal failed or had not reached the
// server when the subscription bound to it) has delivered messages, and
// reading from it would skip those it handed out.
bool fresh_as_asked(const jsConsumerInfo& ci, uint64_t after);

class StreamReader {
  public:
    static report::Result<std::unique_ptr<StreamReader>> open(jsCtx* js, const ReaderOptions& o);
    ~StreamReader();
    StreamReader(const StreamReader&) = delete;
    StreamReader& operator=(const StreamReader&) = delete;

    // Up to `batch` messages and `max_bytes`, waiting up to `wait_ms` for the
    // first (0: only what is there now). NATS_OK (some messages),
    // NATS_TIMEOUT (none), or a failure: last_error() says what.
    natsStatus fetch(natsMsgList& out, int batch, int64_t max_bytes, int wait_ms);
    // Acknowledges `msg` and every message before it (best effort: a lost
    // acknowledgement only means a redelivery the collector discards).
    void acknowledge(natsMsg* msg);

    const ReaderOptions& options() const { return opt_; }

  private:
    StreamReader() = default;
    ReaderOptions opt_;
    natsSubscription* sub_ = nullptr;
};

}  // namespace sluice::jetstream
