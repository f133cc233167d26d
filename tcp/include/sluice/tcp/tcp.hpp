// The whole TCP transport API: messages, authentication, the sender the
// egress stage polls, and the receiver the collector drives.
#pragma once

#include "sluice/tcp/auth.hpp"
#include "sluice/tcp/backoff.hpp"
#include "sluice/tcp/endpoint.hpp"
#include "sluice/tcp/protocol.hpp"
#include "sluice/tcp/receiver.hpp"
#include "sluice/tcp/retransmit.hpp"
#include "sluice/tcp/sender.hpp"
#include "sluice/tcp/stats.hpp"
