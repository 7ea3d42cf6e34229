#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tsrunner::detail {

// The tensors the Linear rewrites derive from weights (a transposed Conv1D weight, merged Q/K/V
// weights, oneDNN's packed copy, the small-row kernel's panels), made once per weight and
// shared by every method's graph. A frozen module's methods share their weight constants, but a
// generation export has three methods (forward, prefill, decode) and each graph is rewritten on
// its own: without this every packed copy was made three times (GPT-2 small: 1.9 GB more).
class DerivedWeights {
 public:
  // What `make` derives from `sources` (by their data) under `kind`, made on the first request.
  at::Tensor get(const std::string& kind, const std::vector<at::Tensor>& sources,
                 const std::function<at::Tensor()>& make) {
    // By data, shape and strides: the methods' graphs may hold distinct tensors of one weight.
    Key key{kind, {}};
    for (const at::Tensor& source : sources) {
      const void* data = source.has_storage() ? source.data_ptr() : source.unsafeGetTensorImpl();
      key.second.push_back(reinterpret_cast<intptr_t>(data));
      key.second.insert(key.second.end(), source.sizes().begin(), source.sizes().end());
      key.second.push_back(-1);
      if (source.layout() == at::kStrided) {
        key.second.insert(key.second.end(), source.strides().begin(), source.strides().end());
      }
      key.second.push_back(static_cast<intptr_t>(source.scalar_type()));
    }
    const auto found = made_.find(key);
    if (found != made_.end()) return found->second.derived;
    Entry entry{sources, make()};
    const at::Tensor derived = entry.derived;
    made_.emplace(std::move(key), std::move(entry));
    return derived;
  }

 private:
  using Key = std::pair<std::string, std::vector<intptr_t>>;
  struct Entry {
    std::vector<at::Tensor> sources;  // kept alive, so that no other tensor takes their address
    at::Tensor derived;
  };
  std::map<Key, Entry> made_;
};

}  // namespace tsrunner::detail
