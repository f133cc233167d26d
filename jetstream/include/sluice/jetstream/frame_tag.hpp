// What travels beside each frame in a JetStream message. The payload is the
// frame, byte for byte as over TCP (docs/wire-protocol.md); two headers say
// what a TCP connection's handshake would have said, per message, because a
// message outlives the connection that published it:
//
//   Nats-Msg-Id:  <stream id>-<session, 16 hex digits>-<sequence>
//       JetStream stores a message id once within the stream's duplicate
//       window, so a frame replayed after a reconnect (its acknowledgement was
//       lost) is acknowledged again but not stored twice. A restarted sender
//       is a new session, so its sequence 0 is not taken for the old one's.
//   Sluice-Frame: <session, 16 hex digits> <floor> <gap from>
//       floor: every frame of the session below it had been stored (or
//       dropped by the sender) when this one was published; gap from: frames
//       [gap from, sequence) were dropped by the sender (its buffer was full)
//       and never published. With these the collector tells a frame that is
//       late (its first publish was lost and it comes again after later ones)
//       from one that will never come (FrameOrder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace sluice::jetstream {

inline constexpr const char* kMsgIdHeader = "Nats-Msg-Id";
inline constexpr const char* kFrameHeader = "Sluice-Frame";

struct FrameTag {
    uint64_t session_id = 0;
    uint64_t floor = 0;
    uint64_t gap_from = 0;
};

// Each returns the text's length; `out` must hold kMaxTagText bytes (with the
// terminating NUL the NATS client wants).
inline constexpr std::size_t kMaxTagText = 80;
std::size_t format_msg_id(std::span<char, kMaxTagText> out, uint64_t stream_id, uint64_t session_id,
                          uint64_t sequence);
std::size_t format_frame_tag(std::span<char, kMaxTagText> out, const FrameTag& tag);

// The sequence a message id names; nullopt for ids sluice did not write.
std::optional<uint64_t> sequence_of_msg_id(std::string_view id);
std::optional<FrameTag> parse_frame_tag(std::string_view text);

// The stream sequence of a message a consumer delivered, from its reply
// subject ($JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...., with or
// without the domain and account tokens); 0 when it is not such a subject.
uint64_t stream_sequence_of_reply(std::string_view reply);
// The consumer sequence of that delivery: 1, 2, 3... for each message the
// consumer hands out (a redelivery too), so a number skipped means a
// delivery that never reached the reader. 0 when it is not such a subject.
uint64_t consumer_sequence_of_reply(std::string_view reply);

}  // namespace sluice::jetstream
