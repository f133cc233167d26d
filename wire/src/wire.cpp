namespace sluice::wire {}
