// Result<T>: a value or an Error, for control-path calls where failure is a normal outcome
// (not enough huge pages, an address that does not parse, a key file that is missing). The
// Error says what went wrong and what to do. Modelled on std::expected, which C++20 lacks.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice::report {

struct Error {
    // errno value when a system call failed, else 0.
    int code = 0;
    // What went wrong and what the operator should do about it.
    std::string message;
};

template <class T>
class [[nodiscard]] Result {
    static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>);

  public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    // Throws std::runtime_error carrying the error message if there is no value: reaching for
    // the value of a failed call is a bug, and the message says what the failure was.
    T& value() & {
        check();
        return std::get<0>(v_);
    }
    const T& value() const& {
        check();
        return std::get<0>(v_);
    }
    T&& value() && {
        check();
        return std::get<0>(std::move(v_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    // Precondition: !has_value().
    const Error& error() const& { return std::get<1>(v_); }

  private:
    void check() const {
        if (!has_value()) throw std::runtime_error(std::get<1>(v_).message);
    }
    std::variant<T, Error> v_;
};

}  // namespace sluice::report
