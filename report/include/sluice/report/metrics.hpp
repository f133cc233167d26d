// Metrics for Prometheus: the text exposition format (version 0.0.4) that
// sluice and sluice-collector serve on GET /metrics. Both build it from the
// counter tables their summaries and telemetry print (each counter's name
// and description, declared once next to the code that moves it), so a
// metric's HELP is the operator text of the summary's counter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::report {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsText {
  public:
    // The Content-Type of text().
    static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

    // Every metric is named PREFIX_NAME ("sluice", "sluice_collector").
    explicit MetricsText(std::string_view prefix);

    // PREFIX_NAME_total (counters end in _total), TYPE counter.
    void counter(std::string_view name, std::string_view help, const MetricLabels& labels,
                 uint64_t value);
    void gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
               double value);

    // The exposition: each metric's HELP and TYPE once, then its samples in
    // the order they were added, whatever came between them. A metric added
    // again with another type keeps its first and loses the sample (the
    // tables declare each name once, so it never happens).
    std::string text() const;

  private:
    struct Family {
        std::string name, help;
        bool is_counter = true;
        std::string samples;
    };
    void add(std::string_view name, std::string_view help, bool is_counter,
             const MetricLabels& labels, std::string_view value);
    std::string prefix_;
    std::vector<Family> families_;
};

// A metric or label name as Prometheus allows it ([a-zA-Z_:][a-zA-Z0-9_:]*,
// no ':' in label names): any other byte becomes '_'.
std::string metric_name(std::string_view s, bool label = false);

}  // namespace sluice::report
