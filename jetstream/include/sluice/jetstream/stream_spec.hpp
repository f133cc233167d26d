// The JetStream stream sluice's frames go to: its name, the subject of each
// sluice stream (a template with "{stream_id}"), and the settings that decide
// what survives a failure (replicas, file storage, retention limits, the
// window in which a replayed frame is recognised by its message id). The
// sender creates the stream when it is missing and checks it when it exists;
// a stream made with other settings is an error that names each difference,
// never silently changed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nats/nats.h>

namespace sluice::jetstream {

inline constexpr std::string_view kStreamIdToken = "{stream_id}";

struct StreamSpec {
    std::string name = "SLUICE";
    std::string subject = "sluice.frames.{stream_id}";
    uint32_t replicas = 1;              // 1..5: 3 survives one server lost
    uint64_t max_age_s = 86400;         // frames older than this go (0: no limit)
    int64_t max_bytes = -1;             // the stream holds at most this much (-1: no limit)
    uint32_t duplicate_window_s = 120;  // a replay within it is recognised and stored once
    bool discard_new = false;           // at a limit: refuse new frames (true) or drop the oldest
};

// "" when the template is usable, else why not: "{stream_id}" must be one
// whole token of a subject made of [A-Za-z0-9_-] tokens separated by dots.
std::string check_subject(std::string_view subject_template);
// sluice.frames.{stream_id}, 7 -> sluice.frames.7
std::string subject_for(std::string_view subject_template, uint64_t stream_id);
// sluice.frames.{stream_id} -> sluice.frames.*
std::string subject_wildcard(std::string_view subject_template);
// The stream id in a subject the template made; nullopt for any other.
std::optional<uint64_t> stream_id_of(std::string_view subject_template, std::string_view subject);

// What differs between the stream sluice wants and the one the server has,
// one line per setting ("replicas: the stream has 1, sluice.toml wants 3").
std::vector<std::string> conflicts(const StreamSpec& want, const jsStreamConfig& have);

// Creates the stream when missing (if `create`), else checks it. "" on
// success, else the operator's message.
std::string ensure_stream(jsCtx* js, const StreamSpec& spec, bool create);

// The sluice stream ids that have messages in the JetStream stream (from its
// subjects); nullopt with `error` set when it cannot be read.
std::optional<std::vector<uint64_t>> list_stream_ids(jsCtx* js, const StreamSpec& spec,
                                                     std::string& error);

// The stream's replica count as the server has it (the collector group's
// key-value bucket follows it); 0 with `error` set when it cannot be read.
uint32_t stream_replicas(jsCtx* js, const std::string& name, std::string& error);

}  // namespace sluice::jetstream
