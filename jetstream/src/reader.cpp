#include "sluice/jetstream/reader.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "sluice/jetstream/client.hpp"

namespace sluice::jetstream {

bool fresh_as_asked(const jsConsumerInfo& ci, uint64_t after) {
    if (!ci.Config || ci.Delivered.Consumer != 0) return false;
    if (after > 0)
        return ci.Config->DeliverPolicy == js_DeliverByStartSequence &&
               ci.Config->OptStartSeq == after + 1;
    return ci.Config->DeliverPolicy == js_DeliverAll;
}

report::Result<std::unique_ptr<StreamReader>> StreamReader::open(jsCtx* js,
                                                                 const ReaderOptions& o) {
    std::unique_ptr<StreamReader> r(new StreamReader());
    r->opt_ = o;
    const auto fail = [&o](const std::string& why) {
        return report::Error{EIO, fmt::format("cannot read {} from JetStream stream {} "
                                              "(consumer {}): {}",
                                              o.subject, o.stream, o.durable, why)};
    };
    // Whatever an earlier owner left stands at its own position: it goes
    // first, and a removal that fails (no answer during an election) fails
    // the open, retried later, rather than reading from where it stands.
    jsErrCode je = static_cast<jsErrCode>(0);
    const natsStatus ds = js_DeleteConsumer(js, o.stream.c_str(), o.durable.c_str(), nullptr, &je);
    if (ds != NATS_OK && ds != NATS_NOT_FOUND && je != JSConsumerNotFoundErr)
        return fail("removing the consumer an earlier owner left: " + last_error(ds));

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
    je = static_cast<jsErrCode>(0);
    const natsStatus s =
        js_PullSubscribe(&r->sub_, js, o.subject.c_str(), o.durable.c_str(), nullptr, &so, &je);
    if (s != NATS_OK) return fail(last_error(s));
    // A pull subscription binds to a consumer of that name if one exists (one
    // created after the removal above, or one whose removal the server had
    // not applied yet): read only from the one asked for.
    jsConsumerInfo* ci = nullptr;
    je = static_cast<jsErrCode>(0);
    const natsStatus is = natsSubscription_GetConsumerInfo(&ci, r->sub_, nullptr, &je);
    if (is != NATS_OK) return fail("checking the consumer: " + last_error(is));
    const bool fresh = fresh_as_asked(*ci, o.after);
    const uint64_t delivered = ci->Delivered.Stream;
    jsConsumerInfo_Destroy(ci);
    if (!fresh) {
        natsSubscription_Destroy(r->sub_);
        r->sub_ = nullptr;
        js_DeleteConsumer(js, o.stream.c_str(), o.durable.c_str(), nullptr, &je);
        return fail(
            fmt::format("a consumer an earlier owner left (delivered up to position {}) "
                        "stood in place of one starting after position {}; removed, "
                        "opened again at the next attempt",
                        delivered, o.after));
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
