// The check StreamReader::open makes of the consumer its pull subscription
// bound to: only a consumer starting where the lease says, that has
// delivered nothing, is read from. One an earlier owner left would skip the
// messages it had handed out (and the collector would take them for lost).
#include <gtest/gtest.h>

#include "sluice/jetstream/reader.hpp"

namespace sluice::jetstream {
namespace {

struct Info {
    jsConsumerConfig config{};
    jsConsumerInfo info{};
    Info(jsDeliverPolicy policy, uint64_t start, uint64_t delivered_consumer,
         uint64_t delivered_stream) {
        config.DeliverPolicy = policy;
        config.OptStartSeq = start;
        info.Config = &config;
        info.Delivered.Consumer = delivered_consumer;
        info.Delivered.Stream = delivered_stream;
    }
};

TEST(StreamReader, AConsumerAsCreatedIsReadFrom) {
    EXPECT_TRUE(fresh_as_asked(Info(js_DeliverByStartSequence, 101, 0, 0).info, 100));
    EXPECT_TRUE(fresh_as_asked(Info(js_DeliverByStartSequence, 101, 0, 100).info, 100));
    EXPECT_TRUE(fresh_as_asked(Info(js_DeliverAll, 0, 0, 0).info, 0));
}

TEST(StreamReader, AConsumerThatDeliveredAlreadyIsNot) {
    // An earlier owner's consumer, same start, but 40 messages handed out.
    EXPECT_FALSE(fresh_as_asked(Info(js_DeliverByStartSequence, 101, 40, 140).info, 100));
    EXPECT_FALSE(fresh_as_asked(Info(js_DeliverAll, 0, 3, 3).info, 0));
}

TEST(StreamReader, AConsumerStartingElsewhereIsNot) {
    EXPECT_FALSE(fresh_as_asked(Info(js_DeliverByStartSequence, 51, 0, 0).info, 100));
    EXPECT_FALSE(fresh_as_asked(Info(js_DeliverAll, 0, 0, 0).info, 100));
    EXPECT_FALSE(fresh_as_asked(Info(js_DeliverByStartSequence, 1, 0, 0).info, 0));
    EXPECT_FALSE(fresh_as_asked(Info(js_DeliverNew, 0, 0, 0).info, 0));
}

TEST(StreamReader, NoConfigurationIsNot) {
    Info i(js_DeliverAll, 0, 0, 0);
    i.info.Config = nullptr;
    EXPECT_FALSE(fresh_as_asked(i.info, 0));
}

}  // namespace
}  // namespace sluice::jetstream
