// Not for inclusion outside config/src: the schema that drives everything
// the config module does. One table of keys (schema.cpp) gives parsing, range
// checks, "did you mean", --print-config, the reference in
// docs/configuration.md and the documentation checks in tests.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "sluice/config/config.hpp"

namespace sluice::config::detail {

// ---- describing values for messages -----------------------------------------

inline std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

inline std::string describe(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string:
            return "the string " + quote(n.as_string()->get());
        case toml::node_type::integer:
            return "the integer " + std::to_string(n.as_integer()->get());
        case toml::node_type::floating_point: {
            std::ostringstream o;
            o << "the float " << n.as_floating_point()->get();
            return o.str();
        }
        case toml::node_type::boolean:
            return n.as_boolean()->get() ? "the boolean true" : "the boolean false";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        default:
            return "a date/time";
    }
}

inline Position pos_of(const toml::source_region& r) {
    return Position{static_cast<uint32_t>(r.begin.line), static_cast<uint32_t>(r.begin.column)};
}

// ---- the schema ---------------------------------------------------------------

struct Sink {
    std::string file;
    std::vector<Diagnostic>* out;
    void error(Position p, std::string key, std::string msg) const {
        out->push_back(Diagnostic{file, p, std::move(key), std::move(msg), false});
    }
    void warning(Position p, std::string key, std::string msg) const {
        out->push_back(Diagnostic{file, p, std::move(key), std::move(msg), true});
    }
};

// A key of a table whose values live in `Owner` (Config for sections, Port
// for the entries of [[ports]]).
template <class Owner>
struct Field {
    std::string name;  // leaf name
    std::string type;  // for docs: "integer", "boolean", "string", "enum", "array of integers"
    std::string default_value;
    std::string range;
    std::string help;
    bool required = false;
    // Reads the node into the owner; on a mismatch records a diagnostic and
    // leaves the default in place.
    std::function<void(Owner&, const toml::node&, const std::string& key, const Sink&)> read;
    std::function<std::string(const Owner&)> show;  // current value as a TOML literal
};

template <class Owner, class Get>
Field<Owner> integer(const std::string& name, int64_t lo, int64_t hi, const std::string& help,
                     Get get, bool pow2 = false) {
    Field<Owner> f;
    f.name = name;
    f.type = "integer";
    f.range = std::to_string(lo) + ".." + std::to_string(hi) + (pow2 ? ", a power of two" : "");
    f.help = help;
    f.read = [lo, hi, pow2, get](Owner& o, const toml::node& n, const std::string& key,
                                 const Sink& sink) {
        const auto* v = n.as_integer();
        const std::string want = std::string(pow2 ? "a power of two" : "an integer") + " in " +
                                 std::to_string(lo) + ".." + std::to_string(hi);
        if (!v) {
            sink.error(pos_of(n.source()), key, "expected " + want + ", found " + describe(n));
            return;
        }
        const int64_t x = v->get();
        if (x < lo || x > hi || (pow2 && (x <= 0 || (x & (x - 1)) != 0))) {
            sink.error(pos_of(n.source()), key,
                       "expected " + want + ", found " + std::to_string(x));
            return;
        }
        auto& dst = get(o);
        dst = static_cast<std::remove_reference_t<decltype(dst)>>(x);
    };
    f.show = [get](const Owner& o) { return std::to_string(get(const_cast<Owner&>(o))); };
    return f;
}

template <class Owner, class Get>
Field<Owner> boolean(const std::string& name, const std::string& help, Get get) {
    Field<Owner> f;
    f.name = name;
    f.type = "boolean";
    f.range = "true, false";
    f.help = help;
    f.read = [get](Owner& o, const toml::node& n, const std::string& key, const Sink& sink) {
        if (const auto* v = n.as_boolean()) {
            get(o) = v->get();
        } else {
            sink.error(pos_of(n.source()), key,
                       "expected a boolean (true or false), found " + describe(n));
        }
    };
    f.show = [get](const Owner& o) {
        return std::string(get(const_cast<Owner&>(o)) ? "true" : "false");
    };
    return f;
}

template <class Owner, class Get>
Field<Owner> string(const std::string& name, const std::string& range, const std::string& help,
                    Get get, bool required = false) {
    Field<Owner> f;
    f.name = name;
    f.type = "string";
    f.range = range;
    f.help = help;
    f.required = required;
    f.read = [get](Owner& o, const toml::node& n, const std::string& key, const Sink& sink) {
        if (const auto* v = n.as_string()) {
            get(o) = v->get();
        } else {
            sink.error(pos_of(n.source()), key, "expected a string, found " + describe(n));
        }
    };
    f.show = [get](const Owner& o) { return quote(get(const_cast<Owner&>(o))); };
    return f;
}

template <class E>
using Choices = std::vector<std::pair<std::string_view, E>>;

template <class Owner, class E, class Get>
Field<Owner> choice(const std::string& name, Choices<E> choices, const std::string& help, Get get) {
    Field<Owner> f;
    f.name = name;
    f.type = "string";
    std::string list;
    for (const auto& [word, _] : choices)
        list += (list.empty() ? "" : ", ") + quote(word);
    f.range = list;
    f.help = help;
    f.read = [choices, list, get](Owner& o, const toml::node& n, const std::string& key,
                                  const Sink& sink) {
        const auto* v = n.as_string();
        if (!v) {
            sink.error(pos_of(n.source()), key,
                       "expected one of " + list + ", found " + describe(n));
            return;
        }
        for (const auto& [word, value] : choices) {
            if (v->get() == word) {
                get(o) = value;
                return;
            }
        }
        std::string msg = "expected one of " + list + ", found " + quote(v->get());
        std::string_view best;
        std::size_t best_d = 3;
        for (const auto& [word, _] : choices) {
            const std::size_t d = edit_distance(word, v->get());
            if (d < best_d) best_d = d, best = word;
        }
        if (!best.empty()) msg += " (did you mean " + quote(best) + "?)";
        sink.error(pos_of(n.source()), key, msg);
    };
    f.show = [choices, get](const Owner& o) {
        const E value = get(const_cast<Owner&>(o));
        for (const auto& [word, v] : choices) {
            if (v == value) return quote(word);
        }
        return std::string("\"?\"");
    };
    return f;
}

template <class Owner, class Get>
Field<Owner> integer_list(const std::string& name, int64_t lo, int64_t hi, const std::string& help,
                          Get get) {
    Field<Owner> f;
    f.name = name;
    f.type = "array of integers";
    f.range = "each " + std::to_string(lo) + ".." + std::to_string(hi);
    f.help = help;
    f.read = [lo, hi, get](Owner& o, const toml::node& n, const std::string& key,
                           const Sink& sink) {
        const auto* arr = n.as_array();
        if (!arr) {
            sink.error(pos_of(n.source()), key,
                       "expected an array of integers such as [1, 2], found " + describe(n));
            return;
        }
        std::vector<uint32_t> values;
        bool good = true;
        for (const auto& e : *arr) {
            const auto* v = e.as_integer();
            if (!v || v->get() < lo || v->get() > hi) {
                sink.error(pos_of(e.source()), key,
                           "expected integers in " + std::to_string(lo) + ".." +
                               std::to_string(hi) + ", found " + describe(e));
                good = false;
                continue;
            }
            values.push_back(static_cast<uint32_t>(v->get()));
        }
        if (good) get(o) = std::move(values);
    };
    f.show = [get](const Owner& o) {
        std::string s = "[";
        for (uint32_t v : get(const_cast<Owner&>(o))) {
            s += (s.size() > 1 ? ", " : "") + std::to_string(v);
        }
        return s + "]";
    };
    return f;
}

template <class Owner, class Get>
Field<Owner> string_list(const std::string& name, const std::string& range, const std::string& help,
                         Get get) {
    Field<Owner> f;
    f.name = name;
    f.type = "array of strings";
    f.range = range;
    f.help = help;
    f.read = [get](Owner& o, const toml::node& n, const std::string& key, const Sink& sink) {
        const auto* arr = n.as_array();
        if (!arr) {
            sink.error(pos_of(n.source()), key,
                       "expected an array of strings such as [\"a\", \"b\"], found " + describe(n));
            return;
        }
        std::vector<std::string> values;
        bool good = true;
        for (const auto& e : *arr) {
            const auto* v = e.as_string();
            if (!v) {
                sink.error(pos_of(e.source()), key, "expected strings, found " + describe(e));
                good = false;
                continue;
            }
            values.push_back(v->get());
        }
        if (good) get(o) = std::move(values);
    };
    f.show = [get](const Owner& o) {
        std::string s = "[";
        for (const std::string& v : get(const_cast<Owner&>(o)))
            s += (s.size() > 1 ? ", " : "") + quote(v);
        return s + "]";
    };
    return f;
}

struct Section {
    std::string name;
    std::string help;
    std::vector<Field<Config>> fields;
};

// The keys of [[ports]] entries, of [[capture.slice]] entries, and the
// sections with theirs (schema.cpp).
const std::vector<Field<Port>>& port_fields();
const std::vector<Field<Slice>>& slice_fields();
const std::vector<Section>& sections();

// Defaults as TOML literals, read from a default-constructed Config.
template <class Owner>
std::string default_of(const Field<Owner>& f) {
    static const Owner defaults{};
    return f.show(defaults);
}

// The cross-field checks (checks.cpp): what no single key can say alone.
void check(Config& c, const Sink& sink, bool have_ports_key);

}  // namespace sluice::config::detail
