#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace tsrunner {

// A read-only list of texts that copies nothing: made from a std::vector of std::string or of
// std::string_view, a braced list ({"a", "b"}), or a pointer and a count (a C array, memory
// owned by another language). It points into what it was made from, so that must outlive the
// call it is passed to (a temporary passed straight to the call does).
class Texts {
 public:
  Texts() = default;
  Texts(const std::vector<std::string>& texts)  // NOLINT(google-explicit-constructor)
      : strings_(texts.data()), size_(texts.size()) {}
  Texts(const std::vector<std::string_view>& texts)  // NOLINT(google-explicit-constructor)
      : views_(texts.data()), size_(texts.size()) {}
  Texts(std::initializer_list<std::string_view> texts)
      : views_(texts.begin()), size_(texts.size()) {}
  Texts(const std::string_view* texts, size_t count) : views_(texts), size_(count) {}

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // No bounds check, as std::vector's operator[]: i < size().
  std::string_view operator[](size_t i) const {
    return strings_ != nullptr ? std::string_view(strings_[i]) : views_[i];
  }

 private:
  const std::string* strings_ = nullptr;
  const std::string_view* views_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tsrunner
