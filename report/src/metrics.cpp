#include "sluice/report/metrics.hpp"

#include <cmath>

#include <fmt/format.h>

namespace sluice::report {
namespace {

// HELP text escapes '\' and line feeds; label values also '"'.
void escape(std::string& out, std::string_view s, bool quote) {
    for (char c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out += c;
        }
    }
}

}  // namespace

std::string metric_name(std::string_view s, bool label) {
    std::string n(s);
    for (std::size_t i = 0; i < n.size(); ++i) {
        const char c = n[i];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                        (c == ':' && !label) || (i > 0 && c >= '0' && c <= '9');
        if (!ok) n[i] = '_';
    }
    if (n.empty()) n = "_";
    return n;
}

MetricsText::MetricsText(std::string_view prefix) : prefix_(metric_name(prefix)) {}

void MetricsText::counter(std::string_view name, std::string_view help, const MetricLabels& labels,
                          uint64_t value) {
    std::string n(name);
    if (!n.ends_with("_total")) n += "_total";
    add(n, help, true, labels, fmt::format("{}", value));
}

void MetricsText::gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
                        double value) {
    std::string v;
    if (std::isnan(value))
        v = "NaN";
    else if (std::isinf(value))
        v = value > 0 ? "+Inf" : "-Inf";
    else
        v = fmt::format("{}", value);
    add(name, help, false, labels, v);
}

void MetricsText::add(std::string_view name, std::string_view help, bool is_counter,
                      const MetricLabels& labels, std::string_view value) {
    const std::string full = metric_name(fmt::format("{}_{}", prefix_, name));
    Family* f = nullptr;
    // A linear search: a few hundred families at most, once per scrape.
    for (auto& x : families_) {
        if (x.name == full) f = &x;
    }
    if (!f) {
        families_.push_back(Family{full, std::string(help), is_counter, {}});
        f = &families_.back();
    }
    if (f->is_counter != is_counter) return;
    std::string& s = f->samples;
    s += full;
    if (!labels.empty()) {
        s += '{';
        for (std::size_t i = 0; i < labels.size(); ++i) {
            if (i) s += ',';
            s += metric_name(labels[i].first, true);
            s += "=\"";
            escape(s, labels[i].second, true);
            s += '"';
        }
        s += '}';
    }
    s += ' ';
    s += value;
    s += '\n';
}

std::string MetricsText::text() const {
    std::string out;
    for (const auto& f : families_) {
        out += "# HELP " + f.name + ' ';
        escape(out, f.help, false);
        out += "\n# TYPE " + f.name + (f.is_counter ? " counter\n" : " gauge\n");
        out += f.samples;
    }
    return out;
}

}  // namespace sluice::report
