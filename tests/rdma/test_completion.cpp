// The sender tells its work completions apart by opcode, never by where the
// wr_id points: a control SEND's id once carried the receive tag, so its
// completion was taken for a received message and its send-queue slot was
// never counted free.
#include <gtest/gtest.h>

#include <infiniband/verbs.h>

#include "sluice/rdma/sender.hpp"

namespace sluice::rdma {
namespace {

ibv_wc completion(ibv_wc_opcode op, uint64_t wr_id) {
    ibv_wc wc{};
    wc.status = IBV_WC_SUCCESS;
    wc.opcode = op;
    wc.wr_id = wr_id;
    return wc;
}

TEST(SendCompletion, IsClassifiedByOpcodeWhateverItsId) {
    // Every id a sender ever used, with every opcode.
    for (uint64_t id : {0ull, 1ull, (1ull << 62) | 5, (1ull << 63) | 3, ~0ull}) {
        EXPECT_EQ(classify(completion(IBV_WC_SEND, id)), SendCompletion::ControlSend) << id;
        EXPECT_EQ(classify(completion(IBV_WC_RECV, id)), SendCompletion::Message) << id;
        EXPECT_EQ(classify(completion(IBV_WC_RDMA_WRITE, id)), SendCompletion::Write) << id;
        EXPECT_EQ(classify(completion(IBV_WC_COMP_SWAP, id)), SendCompletion::Unknown) << id;
    }
}

}  // namespace
}  // namespace sluice::rdma
