// Endpoints as operators write them: one parser for the config file,
// sluice-send and sluice-collector.
#include <gtest/gtest.h>

#include "sluice/session/endpoint.hpp"

namespace sluice::session {
namespace {

// ---- endpoints -------------------------------------------------------------------

// The error text of parsing `text` (empty when it parses).
std::string error_of(std::string_view text) {
    const auto e = parse_endpoint(text);
    return e ? std::string() : e.error().message;
}

TEST(Endpoint, ParsesWhatOperatorsWrite) {
    auto e = parse_endpoint("127.0.0.1:7700");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->host, "127.0.0.1");
    EXPECT_EQ(e->port, 7700);
    EXPECT_EQ(e->transport, Transport::Tcp);
    EXPECT_FALSE(e->scheme_given);
    e = parse_endpoint("tcp://collector.example.net:9");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->host, "collector.example.net");
    EXPECT_TRUE(e->scheme_given);
    e = parse_endpoint("[2001:db8::1]:7700");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->host, "2001:db8::1");
    EXPECT_EQ(e->to_string(), "[2001:db8::1]:7700");
    EXPECT_EQ(e->url(), "tcp://[2001:db8::1]:7700");
    e = parse_endpoint("rdma://[fd00::2]:7701");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->transport, Transport::Rdma);
    EXPECT_EQ(e->host, "fd00::2");
    EXPECT_EQ(e->port, 7701);
    // No scheme: the caller's default transport.
    e = parse_endpoint("10.0.0.2:7700", Transport::Rdma);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->transport, Transport::Rdma);
    EXPECT_EQ(parse_endpoint("tcp://10.0.0.2:7700", Transport::Rdma)->transport, Transport::Tcp);
}

TEST(Endpoint, EveryRefusalNamesTheTextAndTheFix) {
    EXPECT_NE(error_of("127.0.0.1").find("no port"), std::string::npos);
    EXPECT_NE(error_of("127.0.0.1").find("'127.0.0.1'"), std::string::npos);
    EXPECT_NE(error_of("127.0.0.1:0").find("1 to 65535"), std::string::npos);
    EXPECT_NE(error_of("127.0.0.1:65536").find("1 to 65535"), std::string::npos);
    EXPECT_NE(error_of("127.0.0.1:7x").find("1 to 65535"), std::string::npos);
    EXPECT_NE(error_of(":7700").find("empty host"), std::string::npos);
    EXPECT_NE(error_of("2001:db8::1:7700").find("[ADDRESS]:PORT"), std::string::npos);
    EXPECT_NE(error_of("[2001:db8::1:7700").find("[ADDRESS]:PORT"), std::string::npos);
    EXPECT_NE(error_of("udp://1.2.3.4:5").find("unknown scheme 'udp://'"), std::string::npos);
    EXPECT_NE(error_of("udp://1.2.3.4:5").find("rdma://HOST:PORT"), std::string::npos);
    EXPECT_NE(error_of("rdma://").find("no port"), std::string::npos);
}

TEST(Endpoint, LoopbackIsRecognised) {
    EXPECT_TRUE(is_loopback(resolve({"127.0.0.1", 1})));
    EXPECT_TRUE(is_loopback(resolve({"127.1.2.3", 1})));
    EXPECT_TRUE(is_loopback(resolve({"::1", 1})));
    EXPECT_FALSE(is_loopback(resolve({"0.0.0.0", 1})));
    EXPECT_FALSE(is_loopback(resolve({"192.0.2.1", 1})));
    EXPECT_FALSE(is_loopback(resolve({"::", 1})));
}

TEST(Endpoint, NatsServerListsBecomeClientUrls) {
    const auto v = parse_nats_servers("jetstream://127.0.0.1:4222,nats2,[::1]:5222,tls://n3:4443");
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_EQ(*v, (std::vector<std::string>{"nats://127.0.0.1:4222", "nats://nats2:4222",
                                            "nats://[::1]:5222", "tls://n3:4443"}));
    EXPECT_TRUE(is_jetstream_url("jetstream://a:1"));
    EXPECT_FALSE(is_jetstream_url("tcp://a:1"));
    EXPECT_EQ(*nats_server_url("nats://[::1]"), "nats://[::1]:4222");
    for (const char* bad : {"jetstream://", "jetstream://a:1,,b:2", "jetstream://a:0",
                            "jetstream://tcp://a:1", "jetstream://a:1,"}) {
        const auto r = parse_nats_servers(bad);
        EXPECT_FALSE(r) << bad;
    }
    EXPECT_NE(parse_nats_servers("jetstream://a:1,,b:2").error().message.find("empty server"),
              std::string::npos);
}

// ---- backoff ---------------------------------------------------------------------

}  // namespace
}  // namespace sluice::session
