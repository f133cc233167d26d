namespace sluice::mempool {}
