#include "sluice/jetstream/reader.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "sluice/jetstream/client.hpp"

namespace sluice::jetstream {

report::Result<std::unique_ptr<StreamReader>> StreamReader::open(jsCtx* js,
                                                                 const ReaderOptions& o) {
    std::unique_ptr<StreamReader> r(new StreamReader());
    r->opt_ = o;
    // Whatever an earlier owner left stands at its own position.
    jsErrCode je = static_cast<jsErrCode>(0);
    js_DeleteConsumer(js, o.stream.c_str(), o.durable.c_str(), nullptr, &je);

    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = o.stream.c_str();
    so.Config.Durable = o.durable.c_str();
    so.Config.Description = "sluice collector group reader (docs/scale-out.md)";
    so.Config.AckPolicy = js_AckAll;
    so.Config.AckWait = static_cast<int64_t>(o.ack_wait_s) * 1'000'000'000;
    so.Config.MaxAckPending = o.max_ack_pending;
    so.Config.FilterSubject = o.subject.c_str();
    if (o.after > 0) {
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = o.after + 1;
    } else {
        so.Config.DeliverPolicy = js_DeliverAll;
    }
    const natsStatus s =
        js_PullSubscribe(&r->sub_, js, o.subject.c_str(), o.durable.c_str(), nullptr, &so, &je);
    if (s != NATS_OK) {
        return report::Error{EIO, fmt::format("cannot read {} from JetStream stream {} "
                                              "(consumer {}): {}",
                                              o.subject, o.stream, o.durable, last_error(s))};
    }
    return r;
}

StreamReader::~StreamReader() {
    // The consumer stays (durable) for the next owner to replace; only this
    // client's interest goes.
    if (sub_) natsSubscription_Destroy(sub_);
}

natsStatus StreamReader::fetch(natsMsgList& out, int batch, int64_t max_bytes, int wait_ms) {
    jsFetchRequest fr;
    jsFetchRequest_Init(&fr);
    fr.Batch = batch;
    fr.MaxBytes = max_bytes;
    if (wait_ms <= 0) {
        fr.NoWait = true;
    } else {
        fr.Expires = static_cast<int64_t>(wait_ms) * 1'000'000;
    }
    out = natsMsgList{};
    return natsSubscription_FetchRequest(&out, sub_, &fr);
}

void StreamReader::acknowledge(natsMsg* msg) {
    natsMsg_Ack(msg, nullptr);
}

}  // namespace sluice::jetstream
