// Loading: TOML text (and command-line overrides) through the schema into a
// Config, every problem collected with its file, line and key, then the
// cross-field checks.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "schema.hpp"

namespace sluice::config {
namespace {

using namespace detail;

// ---- validation of single values -----------------------------------------------

void suggest(std::string& msg, std::string_view word, const std::vector<std::string>& candidates,
             std::string_view prefix) {
    std::string_view best;
    std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(word, c);
        if (d < best_d) best_d = d, best = c;
    }
    if (!best.empty()) msg += " (did you mean '" + std::string(prefix) + std::string(best) + "'?)";
}

// Applies "a.b.c=value" overrides to the parsed table.
void apply_override(toml::table& root, const std::string& ov, const Sink& sink) {
    const auto eq = ov.find('=');
    if (eq == std::string::npos || eq == 0) {
        sink.error({}, ov, "an override must look like key=value, e.g. batch.frame_size=65536");
        return;
    }
    const std::string key = ov.substr(0, eq);
    const std::string text = ov.substr(eq + 1);
    toml::table parsed;
    try {
        parsed = toml::parse("v = " + text);
    } catch (const toml::parse_error&) {
        parsed = toml::table{{"v", text}};  // a bare word: take it as a string
    }
    toml::table* t = &root;
    std::size_t start = 0;
    for (;;) {
        const auto dot = key.find('.', start);
        const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
        if (dot == std::string::npos) {
            t->insert_or_assign(part, *parsed.get("v"));
            return;
        }
        auto* next = t->get(part);
        if (!next) {
            t->insert(part, toml::table{});
            next = t->get(part);
        }
        if (!next->is_table()) {
            sink.error({}, key, "cannot override inside '" + part + "': it is not a table");
            return;
        }
        t = next->as_table();
        start = dot + 1;
    }
}

template <class Owner>
void read_table(Owner& owner, const toml::table& table, const std::vector<Field<Owner>>& fields,
                const std::string& prefix, const Sink& sink,
                std::map<std::string, Position>& positions,
                const std::vector<std::string>& all_keys) {
    std::vector<std::string> names;
    names.reserve(fields.size());
    for (const auto& f : fields)
        names.push_back(f.name);
    for (const auto& [k, node] : table) {
        const std::string name(k.str());
        const std::string dotted = prefix + name;
        auto it = std::find_if(fields.begin(), fields.end(),
                               [&](const auto& f) { return f.name == name; });
        if (it == fields.end()) {
            std::string msg = "unknown key";
            const std::size_t before = msg.size();
            suggest(msg, name, names, prefix);
            if (msg.size() == before) {
                // Maybe it belongs to another section.
                for (const auto& full : all_keys) {
                    const auto leaf = full.substr(full.rfind('.') + 1);
                    if (leaf == name) {
                        msg += " (did you mean '" + full + "'? it belongs in [" +
                               full.substr(0, full.rfind('.')) + "])";
                        break;
                    }
                }
            }
            sink.error(pos_of(k.source()), dotted, msg);
            continue;
        }
        positions[dotted] = pos_of(node.source());
        it->read(owner, node, dotted, sink);
    }
    for (const auto& f : fields) {
        if (f.required && !table.contains(f.name)) {
            sink.error(pos_of(table.source()), prefix + f.name,
                       "missing: this key is required (" + f.range + ")");
        }
    }
}

// [[capture.slice]] tables: each a filter and a snap length.
void read_slices(Config& c, const toml::node& node, const Sink& sink) {
    c.positions["capture.slice"] = pos_of(node.source());
    const auto* arr = node.as_array();
    if (!arr || !arr->is_array_of_tables()) {
        sink.error(pos_of(node.source()), "capture.slice",
                   "expected [[capture.slice]] tables, each with a filter and a snaplen, e.g. "
                   "filter = \"tcp port 443\", snaplen = 128; found " +
                       describe(node));
        return;
    }
    if (arr->size() > kMaxSlices) {
        sink.error(pos_of(node.source()), "capture.slice",
                   "expected at most " + std::to_string(kMaxSlices) +
                       " [[capture.slice]] rules, "
                       "found " +
                       std::to_string(arr->size()) +
                       " (each costs a filter run per packet that no earlier rule matched): "
                       "merge rules with the same snaplen with \"or\"");
        return;
    }
    std::vector<std::string> keys;
    for (const auto& f : slice_fields())
        keys.push_back("capture.slice." + f.name);
    for (std::size_t i = 0; i < arr->size(); ++i) {
        Slice sl;
        const std::string prefix = "capture.slice[" + std::to_string(i) + "].";
        read_table(sl, *arr->get(i)->as_table(), slice_fields(), prefix, sink, c.positions, keys);
        c.positions["capture.slice[" + std::to_string(i) + "]"] = pos_of(arr->get(i)->source());
        if (arr->get(i)->as_table()->contains("filter") && sl.filter.empty()) {
            sink.error(c.position_of(prefix + "filter"), prefix + "filter",
                       "expected a tcpdump expression: an empty filter would match every packet "
                       "(set capture.snaplen for that)");
        }
        c.capture.slices.push_back(std::move(sl));
    }
}

}  // namespace

Position Config::position_of(std::string_view key) const {
    auto it = positions.find(std::string(key));
    if (it != positions.end()) return it->second;
    // A key left at its default: point at its section, if the file has it.
    const auto dot = key.find('.');
    if (dot != std::string_view::npos) {
        it = positions.find(std::string(key.substr(0, dot)));
        if (it != positions.end()) return it->second;
    }
    return {};
}

std::string Diagnostic::str() const {
    std::string s = file;
    if (where.line) s += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
    s += warning ? ": warning: " : ": error: ";
    if (!key.empty()) s += key + ": ";
    return s + message;
}

bool LoadResult::ok() const {
    return error_count() == 0;
}

std::size_t LoadResult::error_count() const {
    return static_cast<std::size_t>(std::count_if(diagnostics.begin(), diagnostics.end(),
                                                  [](const Diagnostic& d) { return !d.warning; }));
}

LoadResult load_string(std::string_view text, std::string_view source_name,
                       std::span<const std::string> overrides) {
    LoadResult r;
    r.config.source = std::string(source_name);
    Sink sink{std::string(source_name), &r.diagnostics};
    toml::table root;
    try {
        root = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        sink.error(pos_of(e.source()), "", "malformed TOML: " + std::string(e.description()));
        return r;
    }
    for (const auto& ov : overrides)
        apply_override(root, ov, sink);

    std::vector<std::string> all_keys;
    for (const auto& s : sections()) {
        for (const auto& f : s.fields)
            all_keys.push_back(s.name + "." + f.name);
    }
    std::vector<std::string> section_names{"ports"};
    for (const auto& s : sections())
        section_names.push_back(s.name);

    bool have_ports_key = false;
    for (const auto& [k, node] : root) {
        const std::string name(k.str());
        if (name == "ports") {
            have_ports_key = true;
            r.config.positions["ports"] = pos_of(node.source());
            const auto* arr = node.as_array();
            if (!arr || !arr->is_array_of_tables()) {
                sink.error(pos_of(node.source()), "ports",
                           "expected [[ports]] tables (one per NIC port), found " + describe(node));
                continue;
            }
            if (arr->empty()) {
                sink.error(pos_of(node.source()), "ports",
                           "expected at least one port, found none");
            }
            std::vector<std::string> port_keys;
            for (const auto& f : port_fields())
                port_keys.push_back("ports." + f.name);
            for (std::size_t i = 0; i < arr->size(); ++i) {
                Port p;
                const std::string prefix = "ports[" + std::to_string(i) + "].";
                read_table(p, *arr->get(i)->as_table(), port_fields(), prefix, sink,
                           r.config.positions, port_keys);
                r.config.positions["ports[" + std::to_string(i) + "]"] =
                    pos_of(arr->get(i)->source());
                r.config.ports.push_back(std::move(p));
            }
            continue;
        }
        auto sec = std::find_if(sections().begin(), sections().end(),
                                [&](const Section& s) { return s.name == name; });
        if (sec == sections().end()) {
            std::string msg = "unknown key";
            const std::size_t before = msg.size();
            suggest(msg, name, section_names, "");
            if (msg.size() == before && !node.is_table()) {
                for (const auto& full : all_keys) {
                    if (full.substr(full.find('.') + 1) == name) {
                        msg += " (did you mean '" + full + "'? it belongs in [" +
                               full.substr(0, full.find('.')) + "])";
                        break;
                    }
                }
            }
            sink.error(pos_of(k.source()), name, msg);
            continue;
        }
        r.config.positions[name] = pos_of(node.source());
        if (!node.is_table()) {
            sink.error(pos_of(node.source()), name,
                       "expected a table [" + name + "], found " + describe(node));
            continue;
        }
        const toml::table* table = node.as_table();
        toml::table without_slices;
        if (name == "capture" && table->contains("slice")) {
            read_slices(r.config, *table->get("slice"), sink);
            without_slices = *table;
            without_slices.erase("slice");
            table = &without_slices;
        }
        read_table(r.config, *table, sec->fields, name + ".", sink, r.config.positions, all_keys);
    }
    check(r.config, sink, have_ports_key);
    std::stable_sort(
        r.diagnostics.begin(), r.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
            return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
        });
    return r;
}

LoadResult load_file(const std::filesystem::path& path, std::span<const std::string> overrides) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        LoadResult r;
        r.config.source = path.string();
        std::error_code ec;
        const bool exists = std::filesystem::exists(path, ec);
        r.diagnostics.push_back(
            Diagnostic{path.string(),
                       {},
                       "",
                       exists ? "cannot read the file (check its permissions)"
                              : "no such file (the example config is config/sluice.toml)",
                       false});
        return r;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return load_string(ss.str(), path.string(), overrides);
}

}  // namespace sluice::config
