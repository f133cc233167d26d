#include "sluice/jetstream/stream_spec.hpp"

#include <charconv>

#include <fmt/format.h>

#include "sluice/jetstream/client.hpp"

namespace sluice::jetstream {
namespace {

constexpr int64_t kNs = 1'000'000'000;
// JetStream's error code for "stream not found".
constexpr int kStreamNotFound = 10059;

bool token_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

std::string setting_text(int64_t v, std::string_view unit) {
    return v < 0 || (v == 0 && unit == "s") ? std::string("no limit")
                                            : fmt::format("{}{}", v, unit);
}

}  // namespace

std::string check_subject(std::string_view t) {
    const auto at = t.find(kStreamIdToken);
    if (at == std::string_view::npos || t.find(kStreamIdToken, at + 1) != std::string_view::npos)
        return "the subject must hold {stream_id} once, e.g. \"sluice.frames.{stream_id}\"";
    std::string_view rest = t;
    while (true) {
        const auto dot = rest.find('.');
        const std::string_view token = rest.substr(0, dot);
        if (token.empty()) return "a subject's tokens are separated by single dots";
        if (token != kStreamIdToken) {
            if (token.find(kStreamIdToken) != std::string_view::npos)
                return "{stream_id} must be a whole token (between dots)";
            for (char c : token) {
                if (!token_char(c))
                    return fmt::format("'{}' in a subject: use letters, digits, '_' and '-'", c);
            }
        }
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
    }
    return "";
}

std::string subject_for(std::string_view t, uint64_t stream_id) {
    const auto at = t.find(kStreamIdToken);
    return fmt::format("{}{}{}", t.substr(0, at), stream_id, t.substr(at + kStreamIdToken.size()));
}

std::string subject_wildcard(std::string_view t) {
    const auto at = t.find(kStreamIdToken);
    return fmt::format("{}*{}", t.substr(0, at), t.substr(at + kStreamIdToken.size()));
}

std::optional<uint64_t> stream_id_of(std::string_view t, std::string_view subject) {
    const auto at = t.find(kStreamIdToken);
    const std::string_view head = t.substr(0, at), tail = t.substr(at + kStreamIdToken.size());
    if (subject.size() <= head.size() + tail.size() || subject.substr(0, head.size()) != head ||
        subject.substr(subject.size() - tail.size()) != tail)
        return std::nullopt;
    const std::string_view digits =
        subject.substr(head.size(), subject.size() - head.size() - tail.size());
    uint64_t id = 0;
    const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (ec != std::errc() || p != digits.data() + digits.size()) return std::nullopt;
    return id;
}

std::vector<std::string> conflicts(const StreamSpec& w, const jsStreamConfig& h) {
    std::vector<std::string> out;
    const std::string wildcard = subject_wildcard(w.subject);
    bool covered = false;
    for (int i = 0; i < h.SubjectsLen; ++i) {
        const std::string_view s = h.Subjects[i];
        covered = covered || s == wildcard || s == ">" ||
                  (s.ends_with(".>") && wildcard.starts_with(s.substr(0, s.size() - 1)));
    }
    if (!covered) out.push_back(fmt::format("subjects: the stream does not take {}", wildcard));
    if (h.Storage != js_FileStorage)
        out.emplace_back("storage: the stream keeps frames in memory; sluice needs file storage");
    if (h.Retention != js_LimitsPolicy)
        out.emplace_back(
            "retention: the stream removes frames once consumed (interest or work queue); "
            "sluice needs limits retention (a collector that takes a stream over reads it "
            "again from where the last owner stopped)");
    if (h.Replicas != static_cast<int64_t>(w.replicas) && !(h.Replicas == 0 && w.replicas == 1))
        out.push_back(
            fmt::format("replicas: the stream has {}, sluice wants {}", h.Replicas, w.replicas));
    const int64_t want_age = static_cast<int64_t>(w.max_age_s) * kNs;
    if (h.MaxAge != want_age)
        out.push_back(fmt::format("max_age: the stream keeps frames for {}, sluice wants {}",
                                  setting_text(h.MaxAge / kNs, "s"),
                                  setting_text(static_cast<int64_t>(w.max_age_s), "s")));
    const int64_t have_bytes = h.MaxBytes <= 0 ? -1 : h.MaxBytes;
    const int64_t want_bytes = w.max_bytes <= 0 ? -1 : w.max_bytes;
    if (have_bytes != want_bytes)
        out.push_back(fmt::format("max_bytes: the stream holds {}, sluice wants {}",
                                  setting_text(have_bytes, " bytes"),
                                  setting_text(want_bytes, " bytes")));
    const int64_t want_dup = static_cast<int64_t>(w.duplicate_window_s) * kNs;
    if (h.Duplicates != want_dup)
        out.push_back(fmt::format(
            "duplicate_window: the stream recognises replays for {} s, sluice wants {} s",
            h.Duplicates / kNs, w.duplicate_window_s));
    const bool have_new = h.Discard == js_DiscardNew;
    if (have_new != w.discard_new)
        out.push_back(fmt::format("discard: the stream {}, sluice wants it to {}",
                                  have_new ? "refuses new frames when full" : "drops the oldest",
                                  w.discard_new ? "refuse new frames" : "drop the oldest"));
    return out;
}

std::string ensure_stream(jsCtx* js, const StreamSpec& w, bool create) {
    if (std::string bad = check_subject(w.subject); !bad.empty()) return bad;
    jsStreamInfo* si = nullptr;
    jsErrCode je = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js, w.name.c_str(), nullptr, &je);
    if (s == NATS_NOT_FOUND || je == kStreamNotFound) {
        if (!create)
            return fmt::format("JetStream has no stream {}: start a sender first (it creates it)",
                               w.name);
        const std::string wildcard = subject_wildcard(w.subject);
        const char* subjects[] = {wildcard.c_str()};
        jsStreamConfig c;
        jsStreamConfig_Init(&c);
        c.Name = w.name.c_str();
        c.Description = "sluice capture frames (docs/scale-out.md)";
        c.Subjects = subjects;
        c.SubjectsLen = 1;
        c.Storage = js_FileStorage;
        c.Retention = js_LimitsPolicy;
        c.Replicas = w.replicas;
        c.MaxAge = static_cast<int64_t>(w.max_age_s) * kNs;
        c.MaxBytes = w.max_bytes <= 0 ? -1 : w.max_bytes;
        c.Duplicates = static_cast<int64_t>(w.duplicate_window_s) * kNs;
        c.Discard = w.discard_new ? js_DiscardNew : js_DiscardOld;
        s = js_AddStream(&si, js, &c, nullptr, &je);
        if (s == NATS_OK) {
            jsStreamInfo_Destroy(si);
            return "";
        }
        std::string refused = last_error(s);
        if (je == JSStreamSubjectOverlapErr)
            refused = fmt::format(
                "another JetStream stream already takes subjects {}: give "
                "this one another subject (egress.subject, --subject) or use "
                "that stream",
                wildcard);
        else if (je)
            refused += fmt::format(" (JetStream error {})", static_cast<int>(je));
        // Another sender may have created it meanwhile: check that one.
        s = js_GetStreamInfo(&si, js, w.name.c_str(), nullptr, &je);
        if (s != NATS_OK)
            return fmt::format("cannot create JetStream stream {}: {}", w.name, refused);
    } else if (s != NATS_OK) {
        return fmt::format("cannot read JetStream stream {}: {}", w.name, last_error(s));
    }
    const std::vector<std::string> diff = conflicts(w, *si->Config);
    jsStreamInfo_Destroy(si);
    if (diff.empty()) return "";
    std::string text = fmt::format(
        "JetStream stream {} exists with other settings than sluice's (change sluice's, or "
        "remove the stream with `nats stream rm {}` once every collector has read it):",
        w.name, w.name);
    for (const auto& d : diff)
        text += " " + d + ";";
    text.pop_back();
    return text;
}

std::optional<std::vector<uint64_t>> list_stream_ids(jsCtx* js, const StreamSpec& spec,
                                                     std::string& error) {
    const std::string wildcard = subject_wildcard(spec.subject);
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = wildcard.c_str();
    jsStreamInfo* si = nullptr;
    jsErrCode je = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&si, js, spec.name.c_str(), &o, &je);
    if (s != NATS_OK) {
        error = s == NATS_NOT_FOUND || je == kStreamNotFound
                    ? fmt::format("JetStream has no stream {} yet: start a sender (it creates it)",
                                  spec.name)
                    : fmt::format("cannot read JetStream stream {}: {}", spec.name, last_error(s));
        return std::nullopt;
    }
    std::vector<uint64_t> ids;
    if (const jsStreamStateSubjects* subjects = si->State.Subjects) {
        for (int i = 0; i < subjects->Count; ++i) {
            if (const auto id = stream_id_of(spec.subject, subjects->List[i].Subject))
                ids.push_back(*id);
        }
    }
    jsStreamInfo_Destroy(si);
    return ids;
}

uint32_t stream_replicas(jsCtx* js, const std::string& name, std::string& error) {
    jsStreamInfo* si = nullptr;
    jsErrCode je = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&si, js, name.c_str(), nullptr, &je);
    if (s != NATS_OK) {
        error = s == NATS_NOT_FOUND || je == kStreamNotFound
                    ? fmt::format("JetStream has no stream {} yet: start a sender (it creates it)",
                                  name)
                    : fmt::format("cannot read JetStream stream {}: {}", name, last_error(s));
        return 0;
    }
    const auto r = static_cast<uint32_t>(si->Config->Replicas < 1 ? 1 : si->Config->Replicas);
    jsStreamInfo_Destroy(si);
    return r;
}

}  // namespace sluice::jetstream
