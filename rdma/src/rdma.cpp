namespace sluice::rdma {}
