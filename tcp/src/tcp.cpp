namespace sluice::tcp {}
