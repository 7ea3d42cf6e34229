#pragma once

#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

namespace tsrunner::cli {

// CLI11's own range validators print their bounds as doubles (a 300-digit "maximum") and say
// "0 not in range 0 to ..." for a positive one: these name the allowed integers plainly.
inline CLI::Validator integer_in(int64_t low, int64_t high) {
  const std::string allowed =
      high == std::numeric_limits<int64_t>::max()
          ? "an integer of at least " + std::to_string(low)
          : "an integer from " + std::to_string(low) + " to " + std::to_string(high);
  return CLI::Validator(
      [low, high, allowed](std::string& value) -> std::string {
        int64_t number = 0;
        const char* end = value.data() + value.size();
        const auto [ptr, ec] = std::from_chars(value.data(), end, number);
        if (ec == std::errc() && ptr == end && number >= low && number <= high) return "";
        return "\"" + value + "\" is not " + allowed;
      },
      "INT " + std::to_string(low) +
          (high == std::numeric_limits<int64_t>::max() ? "+" : ".." + std::to_string(high)));
}

inline CLI::Validator integer_at_least(int64_t low) {
  return integer_in(low, std::numeric_limits<int64_t>::max());
}

// A number of seconds above zero (finite, so "inf" and "nan" are refused too).
inline CLI::Validator positive_seconds() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        double number = 0;
        const char* end = value.data() + value.size();
        const auto [ptr, ec] = std::from_chars(value.data(), end, number);
        if (ec == std::errc() && ptr == end && number > 0 && number < 1e9) return "";
        return "\"" + value + "\" is not a number of seconds above 0";
      },
      "SECONDS");
}

// A number of milliseconds from `low` to `high` (fractions allowed; "inf" and "nan" refused).
inline CLI::Validator milliseconds_in(int64_t low, int64_t high) {
  const std::string allowed =
      "a number of milliseconds from " + std::to_string(low) + " to " + std::to_string(high);
  return CLI::Validator(
      [low, high, allowed](std::string& value) -> std::string {
        double number = 0;
        const char* end = value.data() + value.size();
        const auto [ptr, ec] = std::from_chars(value.data(), end, number);
        if (ec == std::errc() && ptr == end && number >= static_cast<double>(low) &&
            number <= static_cast<double>(high)) {
          return "";
        }
        return "\"" + value + "\" is not " + allowed;
      },
      "MS " + std::to_string(low) + ".." + std::to_string(high));
}

}  // namespace tsrunner::cli
