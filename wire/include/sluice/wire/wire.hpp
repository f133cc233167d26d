// The whole frame-format API: format, builder, encoder, reader.
#pragma once

#include "sluice/wire/builder.hpp"
#include "sluice/wire/codec.hpp"
#include "sluice/wire/error.hpp"
#include "sluice/wire/format.hpp"
#include "sluice/wire/reader.hpp"
