// The collector group's records in its key-value bucket: leases, releases
// and members, as text `nats kv get` shows, and their keys.
#include <gtest/gtest.h>

#include "sluice/jetstream/group.hpp"

namespace sluice::jetstream {
namespace {

TEST(GroupRecords, LeasesRoundTrip) {
    Lease l;
    l.owner = "0123456789abcdef";
    l.session_id = 0xabcdef;
    l.known = true;
    l.next_sequence = 100;
    l.next_packet_index = 123456;
    l.position = 9999;
    l.beat = 3;
    const std::string text = encode(l);
    EXPECT_EQ(text,
              "sluice-lease v1 owner=0123456789abcdef session=0000000000abcdef known=1 next=100 "
              "packet=123456 js=9999 beat=3");
    EXPECT_EQ(decode_lease(text), l);
    Lease released;  // no owner
    EXPECT_EQ(decode_lease(encode(released)), released);
}

TEST(GroupRecords, ReleasesAndMembersRoundTrip) {
    const Release r{41, 700, 12};
    EXPECT_EQ(decode_release(encode(r)), r);
    const Member m{"host-a:/srv/capture one", 3, 17};
    EXPECT_EQ(decode_member(encode(m)), m);
}

TEST(GroupRecords, AnythingElseIsRefused) {
    for (const char* bad : {"", "sluice-lease v2 owner=a",
                            "sluice-lease v1 owner=a session=zz known=1 next=1 "
                            "packet=1 js=1 beat=1",
                            "sluice-lease v1 owner=a known=1", "hello"})
        EXPECT_FALSE(decode_lease(bad)) << bad;
    EXPECT_FALSE(decode_release("sluice-release v1 lease=1"));
    EXPECT_FALSE(decode_member("sluice-member v1 streams=1"));
}

TEST(GroupRecords, Keys) {
    EXPECT_EQ(lease_key(7), "lease.7");
    EXPECT_EQ(stream_of_lease_key("lease.7"), 7u);
    EXPECT_EQ(stream_of_lease_key("lease."), std::nullopt);
    EXPECT_EQ(stream_of_lease_key("member.7"), std::nullopt);
    EXPECT_EQ(release_key("ab", 7), "release.ab.7");
    EXPECT_EQ(member_key("ab"), "member.ab");
    EXPECT_EQ(collector_of_member_key("member.ab"), "ab");
    EXPECT_EQ(collector_of_member_key("lease.1"), "");
}

TEST(GroupRecords, GroupNames) {
    EXPECT_EQ(check_group_name("capture-eu_1"), "");
    EXPECT_NE(check_group_name(""), "");
    EXPECT_NE(check_group_name("a.b"), "");
    EXPECT_NE(check_group_name(std::string(65, 'a')), "");
}

}  // namespace
}  // namespace sluice::jetstream
