#include "sluice/jetstream/sender.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "sluice/jetstream/frame_tag.hpp"
#include "sluice/session/detail/text.hpp"
#include "sluice/session/endpoint.hpp"

namespace sluice::jetstream {
namespace {

using session::detail::format_into;

// Links kept beyond the current one: a library thread may still be inside a
// callback of a connection that just went; after this many reconnects it
// surely is not.
constexpr std::size_t kLinksKept = 16;

session::SenderSettings settings_of(const SenderConfig& c, const std::string& peer) {
    if (c.client.servers.empty()) throw std::invalid_argument("jetstream: no NATS server given");
    if (const std::string bad = check_subject(c.stream.subject); !bad.empty())
        throw std::invalid_argument("jetstream: subject: " + bad);
    if (c.stream.replicas < 1 || c.stream.replicas > 5)
        throw std::invalid_argument("jetstream: replicas must be 1 to 5");
    if (c.publish_burst == 0) throw std::invalid_argument("jetstream: publish_burst must be >= 1");
    session::SenderSettings s;
    s.peer = peer;
    s.stream_id = c.stream_id;
    s.reconnect_min_ms = c.reconnect_min_ms;
    s.reconnect_max_ms = c.reconnect_max_ms;
    s.heartbeat_ms = 0;  // NATS pings its connections itself
    s.timeout_ms = c.timeout_ms;
    s.retransmit_frames = c.retransmit_frames;
    s.session_id = c.session_id;
    s.jitter_seed = c.jitter_seed;
    return s;
}

std::string peer_of(const SenderConfig& c, const std::string& subject) {
    std::string servers;
    for (const auto& u : c.client.servers) {
        std::string_view h = u;
        if (const auto p = h.find("://"); p != std::string_view::npos) h.remove_prefix(p + 3);
        servers += (servers.empty() ? "" : ",") + std::string(h);
    }
    return fmt::format("{}{} stream {} subject {}", session::kJetStreamScheme, servers,
                       c.stream.name, subject);
}

std::size_t ring_capacity(uint32_t frames) {
    std::size_t n = 64;
    while (n < 4ull * frames)
        n <<= 1;
    return n;
}

}  // namespace

// One connection attempt, run on a thread of its own because the NATS client
// blocks while it connects. The owner polls `done`; an attempt the owner gave
// up on (its timeout) finishes alone and is joined later.
struct JetStreamSender::Attempt {
    SenderConfig cfg;
    jsOptions js_options;
    std::thread thread;
    std::atomic<bool> done{false};
    std::unique_ptr<Client> client;  // set when it worked
    std::string error;               // set when it did not
};

JetStreamSender::JetStreamSender(const SenderConfig& config)
    : cfg_(config),
      subject_(subject_for(cfg_.stream.subject, cfg_.stream_id)),
      peer_(peer_of(cfg_, subject_)),
      acks_(ring_capacity(cfg_.retransmit_frames)),
      core_(settings_of(cfg_, peer_), *this) {
    // One NATS server after another must still fit within the core's
    // connect timeout.
    const auto servers = static_cast<uint32_t>(cfg_.client.servers.size());
    cfg_.client.timeout_ms = std::max<uint32_t>(250, cfg_.timeout_ms / (2 * servers));
    if (cfg_.client.name.empty()) cfg_.client.name = fmt::format("sluice {}", subject_);
}

JetStreamSender::~JetStreamSender() {
    drop_connection();
    for (auto& a : retired_) {
        if (a->thread.joinable()) a->thread.join();
    }
}

void JetStreamSender::run_attempt(const std::shared_ptr<Attempt>& a) {
    auto c = Client::connect(a->cfg.client, &a->js_options);
    if (!c) {
        a->error = c.error().message;
    } else {
        const int64_t max_payload = natsConnection_GetMaxPayload((*c)->nc());
        if (a->cfg.max_frame_bytes && max_payload > 0 &&
            static_cast<int64_t>(a->cfg.max_frame_bytes) + 1024 > max_payload) {
            a->error = fmt::format(
                "frames of up to {} bytes do not fit the NATS server's max_payload ({} bytes): "
                "lower batch.frame_size (sluice-send: --frame-size), or raise max_payload in the "
                "server's configuration",
                a->cfg.max_frame_bytes, max_payload);
        } else if (std::string e = ensure_stream((*c)->js(), a->cfg.stream, a->cfg.create_stream);
                   !e.empty()) {
            a->error = std::move(e);
        } else {
            a->client = std::move(*c);
        }
    }
    // release: pairs with the owner's acquire load of `done` in poll_setup();
    // everything above is visible to it then.
    a->done.store(true, std::memory_order_release);
}

void JetStreamSender::on_publish_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                                     void* closure) {
    // The message is the handler's to free, whatever the answer: a frame
    // that was not stored is published again from the retransmit buffer.
    const std::unique_ptr<natsMsg, void (*)(natsMsg*)> owned(msg, natsMsg_Destroy);
    auto* link = static_cast<Link*>(closure);
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, kMsgIdHeader, &id) != NATS_OK || !id) return;
    const auto seq = sequence_of_msg_id(id);
    if (!seq) return;
    AckEvent ev{*seq, link->epoch, kStored, 0};
    if (pae) {
        ev.kind = kError;
        char text[256];
        const bool has_text = pae->ErrText && *pae->ErrText;
        link->error.set(
            has_text && pae->ErrCode
                ? format_into(text, "{} (JetStream error {})", pae->ErrText,
                              static_cast<int>(pae->ErrCode))
                : format_into(text, "{}", has_text ? pae->ErrText : natsStatus_GetText(pae->Err)));
    } else if (pa && pa->Duplicate) {
        ev.kind = kReplay;
    } else if (!pa) {
        return;
    }
    if (!link->owner->acks_.try_enqueue(ev))
        link->lost.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
}

void JetStreamSender::begin_connect(session::SenderCore& core, uint64_t now) {
    (void)core, (void)now;
    ++epoch_;
    auto link = std::make_unique<Link>();
    link->owner = this;
    link->epoch = epoch_;
    auto a = std::make_shared<Attempt>();
    a->cfg = cfg_;
    jsOptions_Init(&a->js_options);
    a->js_options.PublishAsync.AckHandler = &JetStreamSender::on_publish_ack;
    a->js_options.PublishAsync.AckHandlerClosure = link.get();
    // Never stall in a publish: at most retransmit_frames are in flight.
    a->js_options.PublishAsync.MaxPending = cfg_.retransmit_frames + 16;
    links_.push_back(std::move(link));
    if (links_.size() > kLinksKept) links_.erase(links_.begin());
    a->thread = std::thread([a] { run_attempt(a); });
    attempt_ = std::move(a);
}

bool JetStreamSender::poll_setup(session::SenderCore& core, uint64_t now) {
    // acquire: pairs with the release store at the end of run_attempt().
    if (!attempt_ || !attempt_->done.load(std::memory_order_acquire)) return false;
    std::shared_ptr<Attempt> a = std::move(attempt_);
    a->thread.join();
    if (!a->client) {
        char msg[512];
        core.fail(now, format_into(msg, "{}", a->error));
        return true;
    }
    client_ = std::move(a->client);
    core.handshaking(now);
    // Frames an earlier connection saw stored are released at once; the rest
    // go again, and JetStream recognises those it has by their message id.
    acknowledged_ = core.frames().stored_prefix_end();
    core.welcomed(now, acknowledged_);
    return true;
}

bool JetStreamSender::take_acknowledgements(uint64_t now) {
    std::array<AckEvent, 64> ev;
    bool any = false, failed = false;
    for (std::size_t n; (n = acks_.dequeue_burst(ev)) > 0;) {
        any = true;
        for (std::size_t i = 0; i < n; ++i) {
            const AckEvent& e = ev[i];
            if (e.kind == kError) {
                counters_.publish_errors.inc();
                failed = failed || e.epoch == epoch_;  // an old connection's failure is over
                continue;
            }
            // Stored is stored, whichever connection published it.
            if (core_.frames().mark_stored(e.sequence)) {
                counters_.frames_stored.inc();
                if (e.kind == kReplay) counters_.replays_recognised.inc();
            }
        }
    }
    if (Link& link = *links_.back(); link.lost.load(std::memory_order_relaxed))
        counters_.acknowledgements_lost.add(link.lost.exchange(0, std::memory_order_relaxed));
    if (!any) return false;
    core_.heard(now);
    const uint64_t next = core_.frames().stored_prefix_end();
    if (next > acknowledged_) {
        if (!core_.acknowledged(now, next)) return true;
        acknowledged_ = next;
    }
    if (failed) {
        char msg[512];
        core_.fail(now, format_into(msg,
                                    "JetStream did not store a frame of {}: {}; publishing the "
                                    "frames not yet stored again after the backoff",
                                    peer_, links_.back()->error.get()));
    }
    return true;
}

bool JetStreamSender::publish(uint64_t now) {
    session::RetransmitBuffer& rtx = core_.frames();
    if (rtx.unsent() == 0) return false;
    // Every frame below it is stored or was dropped here (frame_tag.hpp).
    const uint64_t floor = rtx.stored_prefix_end();
    std::array<char, kMaxTagText> id, tag;
    for (uint32_t i = 0; i < cfg_.publish_burst && rtx.unsent() > 0; ++i) {
        const auto f = rtx.next_unsent();
        natsMsg* m = nullptr;
        natsStatus s = natsMsg_Create(&m, subject_.c_str(), nullptr,
                                      reinterpret_cast<const char*>(f.bytes.data()),
                                      static_cast<int>(f.bytes.size()));
        if (s == NATS_OK) {
            format_msg_id(id, cfg_.stream_id, core_.session_id(), f.sequence);
            format_frame_tag(tag, {core_.session_id(), std::min(floor, f.sequence), f.gap_from});
            s = natsMsgHeader_Set(m, kMsgIdHeader, id.data());
            if (s == NATS_OK) s = natsMsgHeader_Set(m, kFrameHeader, tag.data());
        }
        if (s == NATS_OK) {
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MaxWait = cfg_.timeout_ms;
            s = js_PublishMsgAsync(client_->js(), &m, &po);  // takes the message when OK
        }
        if (s != NATS_OK) {
            if (m) natsMsg_Destroy(m);
            char msg[512];
            core_.fail(now, format_into(msg, "cannot publish to {}: {}", peer_, last_error(s)));
            return true;
        }
        published_ = true;
        counters_.frames_published.inc();
        core_.sent(now, f.bytes.size(), rtx.advance(f.bytes.size()));
    }
    return true;
}

bool JetStreamSender::poll_stream(session::SenderCore& core, uint64_t now) {
    (void)core;
    bool work = take_acknowledgements(now);
    if (core_.state() != SenderState::Streaming) return true;
    if (client_->closed()) {
        char msg[384];
        core_.fail(now, format_into(msg,
                                    "lost the connection to NATS server {} ({}); reconnecting to "
                                    "{} (any server of the cluster will do)",
                                    client_->server(), client_->close_reason(), peer_));
        return true;
    }
    return publish(now) || work;
}

void JetStreamSender::drop_connection() {
    if (attempt_) retired_.push_back(std::move(attempt_));
    if (client_ && published_) {
        // Frames published and not acknowledged yet stay with the context,
        // which does not free them: they are published again over the next
        // connection, so these copies go. (Asked only after a publish: the
        // library keeps no such list before one.)
        natsMsgList pending{};
        if (js_PublishAsyncGetPendingList(&pending, client_->js()) == NATS_OK)
            natsMsgList_Destroy(&pending);
    }
    published_ = false;
    client_.reset();
    ++epoch_;  // failures reported for the old connection no longer count
    // Join attempts that finished; one still connecting is joined later.
    std::erase_if(retired_, [](const std::shared_ptr<Attempt>& a) {
        // acquire: pairs with the release store at the end of run_attempt().
        if (!a->done.load(std::memory_order_acquire)) return false;
        a->thread.join();
        return true;
    });
}

void JetStreamSender::close_connection() {
    drop_connection();
}

}  // namespace sluice::jetstream
