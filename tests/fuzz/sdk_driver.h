#pragma once

// Arbitrary bytes through the public C++ API that takes structured input: Pipeline's
// predict_encodings / predict_encoded with arbitrary Encodings, Runner::run with arbitrary
// tensors (names, dtypes, ranks, sizes, strides, values) and the Tokenizer's encode, pad, decode
// and encode_windows with arbitrary arguments. The property: every call returns or throws a
// tsrunner::Error (InvalidInput for bad input), never anything else, and no memory error (ASan,
// UBSan). Shared by the libFuzzer target (sdk_fuzzer.cc, `make fuzz`) and its smoke in
// `make test` (tests/cpp/sdk_fuzz_smoke_test.cc), which feeds it seeded random bytes.
//
// Input layout: byte 0 picks the entry point (modulo 4: predict_encodings, predict_encoded,
// Runner::run, the tokenizer); the rest is read field by field by ByteReader (zeros once it runs
// out), so every byte string is a valid input.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tsrunner/errors.h"
#include "tsrunner/pipeline.h"

namespace tsrunner::fuzzing {

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t byte() { return position_ < size_ ? data_[position_++] : 0; }
  // A value in [0, bound) (bound <= 256).
  size_t small(size_t bound) { return bound == 0 ? 0 : byte() % bound; }
  int64_t integer() {
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value = value << 8 | byte();
    return static_cast<int64_t>(value);
  }
  // Mostly small values (token ids, masks, offsets), sometimes any 64-bit value.
  int64_t token_value() { return byte() < 224 ? static_cast<int64_t>(byte()) : integer(); }
  std::string text(size_t longest) {
    std::string result;
    const size_t length = small(longest + 1);
    for (size_t i = 0; i < length; ++i) result += static_cast<char>(byte());
    return result;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

// A field length near `length`: equal most of the time, else shorter, longer or empty.
inline size_t field_length(ByteReader& in, size_t length) {
  switch (in.small(8)) {
    case 0:
      return 0;
    case 1:
      return length > 0 ? length - 1 : 0;
    case 2:
      return length + 1 + in.small(64);
    default:
      return length;
  }
}

inline Encoding arbitrary_encoding(ByteReader& in) {
  Encoding encoding;
  const size_t length = in.small(40);
  for (size_t i = 0; i < length; ++i) encoding.ids.push_back(in.token_value());
  for (size_t i = field_length(in, length); i > 0; --i) encoding.type_ids.push_back(in.small(3));
  for (size_t i = field_length(in, length); i > 0; --i) {
    encoding.attention_mask.push_back(in.small(4) == 0 ? in.token_value() : 1);
  }
  for (size_t i = field_length(in, length); i > 0; --i) encoding.tokens.push_back(in.text(6));
  for (size_t i = field_length(in, length); i > 0; --i) {
    const auto begin = static_cast<size_t>(in.small(64));
    const auto end = in.small(8) == 0 ? static_cast<size_t>(in.integer()) : begin + in.small(8);
    encoding.offsets.emplace_back(begin, end);
  }
  for (size_t i = field_length(in, length); i > 0; --i) {
    encoding.sequence_ids.push_back(static_cast<int>(in.small(4)) - 1);
  }
  for (size_t i = field_length(in, length); i > 0; --i) {
    encoding.word_ids.push_back(static_cast<int64_t>(in.small(8)) - 1);
  }
  return encoding;
}

inline at::Tensor arbitrary_tensor(ByteReader& in) {
  static const at::ScalarType kTypes[] = {at::kLong,  at::kLong,   at::kLong, at::kInt,
                                          at::kFloat, at::kDouble, at::kBool, at::kByte};
  const at::ScalarType type = kTypes[in.small(8)];
  const size_t rank = in.small(8) == 0 ? in.small(5) : 2;
  std::vector<int64_t> sizes;
  int64_t elements = 1;
  for (size_t d = 0; d < rank; ++d) {
    sizes.push_back(static_cast<int64_t>(in.small(d == 0 ? 5 : 70)));
    elements *= sizes.back();
  }
  std::vector<int64_t> values(static_cast<size_t>(elements));
  for (int64_t& value : values) value = in.token_value();
  at::Tensor tensor = at::tensor(values, at::kLong).reshape(sizes).to(type);
  if (rank == 2 && in.small(4) == 0) tensor = tensor.t().contiguous().t();  // non-contiguous
  if (in.small(16) == 0 && tensor.numel() > 0) tensor = tensor.to_sparse();
  return tensor;
}

// Calls `call`; a tsrunner::Error is a fine answer, anything else aborts with what it was.
template <typename Call>
void expect_only_tsrunner_errors(const char* what, Call&& call) {
  try {
    call();
  } catch (const Error&) {
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s threw a non-tsrunner exception: %s\n", what, error.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "%s threw something that is not an exception\n", what);
    std::abort();
  }
}

inline void drive_sdk(const uint8_t* data, size_t size, const Pipeline& pipeline) {
  ByteReader in(data, size);
  const Runner& runner = pipeline.runner();
  const Tokenizer& tokenizer = pipeline.tokenizer();
  switch (in.small(4)) {
    case 0: {
      std::vector<std::vector<Encoding>> inputs(in.small(5));
      for (auto& windows : inputs) {
        for (size_t w = in.small(8) == 0 ? in.small(3) : 1; w > 0; --w) {
          if (in.small(2) == 0) {
            windows.push_back(arbitrary_encoding(in));
            continue;
          }
          const std::string text = in.text(24);  // maybe not UTF-8: then an arbitrary one
          expect_only_tsrunner_errors("Tokenizer::encode",
                                      [&] { windows.push_back(tokenizer.encode(text)); });
        }
      }
      std::vector<std::string> texts(in.small(4) == 0 ? in.small(6) : 0);
      for (std::string& text : texts) text = in.text(16);
      const std::vector<std::string_view> views(texts.begin(), texts.end());
      const size_t batch_size = in.small(5), concurrent = in.small(4);
      expect_only_tsrunner_errors("Pipeline::predict_encodings", [&] {
        (void)pipeline.predict_encodings(std::move(inputs), views, {}, batch_size, concurrent);
      });
      break;
    }
    case 1: {
      std::vector<Encoding> batch(in.small(4));
      for (Encoding& encoding : batch) encoding = arbitrary_encoding(in);
      expect_only_tsrunner_errors("Pipeline::predict_encoded",
                                  [&] { (void)pipeline.predict_encoded(batch); });
      break;
    }
    case 2: {
      static const char* kNames[] = {"input_ids", "attention_mask", "token_type_ids", "other"};
      TensorMap inputs;
      for (size_t i = in.small(5); i > 0; --i) {
        inputs[kNames[in.small(4)]] = in.small(16) == 0 ? at::Tensor() : arbitrary_tensor(in);
      }
      expect_only_tsrunner_errors("Runner::run", [&] { (void)runner.run(inputs); });
      break;
    }
    default: {
      const std::string text = in.text(48), pair = in.text(48);
      const size_t stride = in.small(12);
      const size_t window = in.small(4) == 0 ? in.small(16) : 64;
      expect_only_tsrunner_errors("Tokenizer::encode_windows", [&] {
        (void)tokenizer.encode_windows(text, pair, stride, window);
      });
      std::vector<Encoding> encodings(in.small(3));
      for (Encoding& encoding : encodings) encoding = arbitrary_encoding(in);
      const size_t pad_to = in.small(16) == 0 ? static_cast<size_t>(in.integer()) : in.small(50);
      expect_only_tsrunner_errors("Tokenizer::pad", [&] { tokenizer.pad(encodings, pad_to); });
      std::vector<int64_t> ids(in.small(20));
      for (int64_t& id : ids) id = in.token_value();
      expect_only_tsrunner_errors("Tokenizer::decode", [&] { (void)tokenizer.decode(ids); });
      std::vector<std::string> tokens(in.small(6));
      for (std::string& token : tokens) token = in.text(8);
      expect_only_tsrunner_errors("Tokenizer::decode_tokens",
                                  [&] { (void)tokenizer.decode_tokens(tokens); });
      expect_only_tsrunner_errors("Tokenizer::encode_batch", [&] {
        (void)tokenizer.encode_batch(
            {text, pair},
            in.small(3) == 0 ? std::vector<std::string>{text} : std::vector<std::string>{}, pad_to);
      });
      break;
    }
  }
}

}  // namespace tsrunner::fuzzing
