#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace tsrunner::text {

// A step of tokenizer.json's "normalizer". Every output character keeps the span of the input
// character HF aligns it with, so token offsets still point into the original text.
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual NormalizedText normalize(const NormalizedText& input) const = 0;
};

using NormalizerPtr = std::shared_ptr<const Normalizer>;

// NFC, NFD, NFKC, NFKD (utf8proc's tables).
class UnicodeNormalizer : public Normalizer {
 public:
  enum class Form { kNFC, kNFD, kNFKC, kNFKD };
  explicit UnicodeNormalizer(Form form) : form_(form) {}
  NormalizedText normalize(const NormalizedText& input) const override;

 private:
  Form form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  NormalizedText normalize(const NormalizedText& input) const override;
};

// Drops leading and/or trailing whitespace.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  NormalizedText normalize(const NormalizedText& input) const override;

 private:
  bool left_;
  bool right_;
};

// Drops combining marks (Mn, Mc, Me); it does not decompose first (a Sequence with NFD does).
class StripAccentsNormalizer : public Normalizer {
 public:
  NormalizedText normalize(const NormalizedText& input) const override;
};

// Replaces every match of a literal string or a regular expression.
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::u32string literal, std::u32string content)
      : literal_(std::move(literal)), content_(std::move(content)) {}
  ReplaceNormalizer(std::shared_ptr<const Regex> regex, std::u32string content)
      : regex_(std::move(regex)), content_(std::move(content)) {}
  NormalizedText normalize(const NormalizedText& input) const override;

 private:
  std::shared_ptr<const Regex> regex_;  // null: literal_
  std::u32string literal_;
  std::u32string content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::u32string prefix) : prefix_(std::move(prefix)) {}
  NormalizedText normalize(const NormalizedText& input) const override;

 private:
  std::u32string prefix_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<NormalizerPtr> steps) : steps_(std::move(steps)) {}
  NormalizedText normalize(const NormalizedText& input) const override;

 private:
  std::vector<NormalizerPtr> steps_;
};

}  // namespace tsrunner::text
