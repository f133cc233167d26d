// The whole TCP transport API: its messages, the sender the egress stage
// polls, and the listener (with its per-connection parser) the collector
// drives. What both transports share is in sluice/session/.
#pragma once

#include "sluice/tcp/listener.hpp"
#include "sluice/tcp/protocol.hpp"
#include "sluice/tcp/receiver.hpp"
#include "sluice/tcp/sender.hpp"
