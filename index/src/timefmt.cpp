#include "sluice/index/timefmt.hpp"

#include <cctype>
#include <cstdio>

namespace sluice::index {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil): no time zone database, no mktime.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp + (mp < 10 ? 3 : -9);
    y += m <= 2;
}

bool leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

class Cursor {
  public:
    explicit Cursor(std::string_view s) : s_(s) {}
    bool done() const { return i_ == s_.size(); }
    char peek() const { return done() ? '\0' : s_[i_]; }
    bool eat(char c) {
        if (peek() != c) return false;
        ++i_;
        return true;
    }
    // Exactly n digits.
    bool digits(int n, uint64_t& v) {
        v = 0;
        for (int k = 0; k < n; ++k) {
            if (!std::isdigit(static_cast<unsigned char>(peek()))) return false;
            v = v * 10 + uint64_t(s_[i_++] - '0');
        }
        return true;
    }
    // 1..9 digits of a fraction, as nanoseconds.
    bool fraction(uint64_t& ns) {
        ns = 0;
        int n = 0;
        while (std::isdigit(static_cast<unsigned char>(peek()))) {
            if (++n > 9) return false;
            ns = ns * 10 + uint64_t(s_[i_++] - '0');
        }
        if (n == 0) return false;
        for (; n < 9; ++n)
            ns *= 10;
        return true;
    }

  private:
    std::string_view s_;
    std::size_t i_ = 0;
};

std::optional<uint64_t> parse_unix(std::string_view s) {
    Cursor c(s);
    uint64_t secs = 0;
    int n = 0;
    while (std::isdigit(static_cast<unsigned char>(c.peek()))) {
        if (++n > 11) return std::nullopt;  // beyond year 5000
        uint64_t d;
        c.digits(1, d);
        secs = secs * 10 + d;
    }
    if (n == 0) return std::nullopt;
    uint64_t ns = 0;
    if (c.eat('.') && !c.fraction(ns)) return std::nullopt;
    if (!c.done()) return std::nullopt;
    return secs * 1'000'000'000u + ns;
}

}  // namespace

std::optional<uint64_t> parse_time(std::string_view s) {
    if (s.find('-') == std::string_view::npos || s.size() < 19) return parse_unix(s);
    Cursor c(s);
    uint64_t y, mo, d, h, mi, sec, ns = 0;
    if (!c.digits(4, y) || !c.eat('-') || !c.digits(2, mo) || !c.eat('-') || !c.digits(2, d))
        return std::nullopt;
    if (!c.eat('T') && !c.eat('t') && !c.eat(' ')) return std::nullopt;
    if (!c.digits(2, h) || !c.eat(':') || !c.digits(2, mi) || !c.eat(':') || !c.digits(2, sec))
        return std::nullopt;
    if (c.eat('.') && !c.fraction(ns)) return std::nullopt;
    int64_t offset_s = 0;
    if (!c.eat('Z') && !c.eat('z')) {
        const char sign = c.peek();
        if (sign != '+' && sign != '-') return std::nullopt;
        c.eat(sign);
        uint64_t oh, om;
        if (!c.digits(2, oh) || !c.eat(':') || !c.digits(2, om) || oh > 23 || om > 59)
            return std::nullopt;
        offset_s = int64_t(oh * 3600 + om * 60) * (sign == '+' ? 1 : -1);
    }
    if (!c.done()) return std::nullopt;
    static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1) return std::nullopt;
    if (d > kDays[mo - 1] + (mo == 2 && leap(int64_t(y)))) return std::nullopt;
    if (h > 23 || mi > 59 || sec > 59) return std::nullopt;  // no leap second: POSIX time has none
    const int64_t t = days_from_civil(int64_t(y), unsigned(mo), unsigned(d)) * 86400 +
                      int64_t(h * 3600 + mi * 60 + sec) - offset_s;
    if (t < 0) return std::nullopt;
    return uint64_t(t) * 1'000'000'000u + ns;
}

std::string format_time(uint64_t ns) {
    const uint64_t secs = ns / 1'000'000'000u;
    int64_t y;
    unsigned m, d;
    civil_from_days(int64_t(secs / 86400), y, m, d);
    const uint64_t s = secs % 86400;
    char out[48];
    std::snprintf(out, sizeof out, "%04lld-%02u-%02uT%02llu:%02llu:%02llu.%09lluZ",
                  static_cast<long long>(y), m, d, static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60),
                  static_cast<unsigned long long>(s % 60),
                  static_cast<unsigned long long>(ns % 1'000'000'000u));
    return out;
}

}  // namespace sluice::index
