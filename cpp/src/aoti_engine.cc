// The AOTInductor engine: runs a `.pt2` package (python/tsrunner/aoti.py writes it) through
// torch::inductor::AOTIModelPackageLoader. The only translation unit that includes it.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/headeronly/version.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "archive.h"
#include "engine.h"
#include "tsrunner/cpu_info.h"
#include "tsrunner/errors.h"
#include "tsrunner/manifest.h"
#include "tsrunner/runner.h"

namespace tsrunner::detail {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;

std::string joined(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words) text += (text.empty() ? "" : " ") + word;
  return text;
}

std::string libtorch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// The compiled code is machine code for one CPU family and one LibTorch: refuse, in one line,
// what would crash (an illegal instruction) or misbehave (another LibTorch's ABI) later.
void check_portability(const std::string& path, const AotiRequirements& needs) {
  std::vector<std::string> missing;
  for (const std::string& flag : needs.cpu_flags) {
    if (!cpu_info().has_flag(flag)) missing.push_back(flag);
  }
  if (!missing.empty()) {
    throw LoadError(path + " was compiled (AOTInductor, isa " + needs.isa + ", " +
                    joined(needs.cpu_isa) + ") for a CPU with " + joined(missing) +
                    ", which this CPU (" + cpu_info().model + ") lacks: re-export it on this " +
                    "machine, or with `tsrunner export ... --format aoti --isa avx2` for any " +
                    "AVX2 CPU");
  }
  if (needs.torch_version != libtorch_version()) {
    throw LoadError(path + " was compiled (AOTInductor) for LibTorch " + needs.torch_version +
                    " but this tsrunner runs LibTorch " + libtorch_version() +
                    ": re-export it with torch " + libtorch_version() +
                    " (`tsrunner export ... --format aoti`), or use a TorchScript .pt");
  }
}

// How many runs of one package may execute at once (AOTIModelPackageLoader's num_runners).
size_t model_instances() {
  constexpr size_t kMinInstances = 8;
  return std::max<size_t>(kMinInstances, std::thread::hardware_concurrency());
}

// A directory only this process's user can enter, removed with everything in it.
class PrivateDirectory {
 public:
  PrivateDirectory() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/tsrunner-aoti-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      throw LoadError("cannot create a temporary directory for the AOTInductor package: " +
                      std::string(std::strerror(errno)));
    }
    path_ = pattern;
  }
  ~PrivateDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  PrivateDirectory(const PrivateDirectory&) = delete;
  PrivateDirectory& operator=(const PrivateDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A record name that stays inside the directory it is extracted to.
bool safe_record_name(const std::string& name) {
  if (name.empty() || name.front() == '/') return false;
  for (const auto& part : std::filesystem::path(name)) {
    if (part == "..") return false;
  }
  return true;
}

// Writes every record of the verified archive but tsrunner's own (extra/) into `directory`,
// read through the archive's one descriptor: the loader then reads these bytes, never the path.
void extract_package(const Archive& archive, const std::string& directory) {
  caffe2::serialize::PyTorchStreamReader& reader = archive.reader();
  std::vector<char> buffer(kChunkBytes);
  for (const std::string& name : reader.getAllRecords()) {
    if (name.rfind("extra/", 0) == 0) continue;
    if (!safe_record_name(name)) {
      throw LoadError(archive.path() + " holds a record named " + name +
                      " outside the package; do not load it");
    }
    const std::filesystem::path target = std::filesystem::path(directory) / name;
    std::filesystem::create_directories(target.parent_path());
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      throw LoadError("cannot write " + target.string() + ": " + std::strerror(errno));
    }
    const size_t size = reader.getRecordSize(name);
    auto chunks = reader.createChunkReaderIter(name, size, kChunkBytes);
    size_t done = 0;
    bool ok = true;
    while (ok && done < size) {
      const size_t got = chunks.next(buffer.data());
      if (got == 0) break;
      for (size_t written = 0; ok && written < got;) {
        const ssize_t n = ::write(fd, buffer.data() + written, got - written);
        ok = n > 0;
        if (ok) written += static_cast<size_t>(n);
      }
      done += got;
    }
    ::close(fd);
    if (!ok || done != size) {
      throw LoadError("cannot extract " + name + " from " + archive.path() + " to " + directory);
    }
  }
}

class AotiEngine final : public Engine {
 public:
  AotiEngine(const Archive& archive, const Manifest& manifest, const RunnerOptions& options) {
    const std::string& path = archive.path();
    if (options.compute != "fp32") {
      throw InvalidInput("compute=" + options.compute + " applies to TorchScript .pt archives; " +
                         path + " is an AOTInductor package (its kernels are compiled in)");
    }
    if (!manifest.aoti) {
      throw LoadError(path + " is an AOTInductor package without the manifest's \"aoti\" " +
                      "record; re-export it with tsrunner");
    }
    if (!c10::Device(options.device).is_cpu()) {
      throw LoadError(path + " was compiled by AOTInductor for the CPU; it cannot run on " +
                      options.device + " (re-export it on that device's machine)");
    }
    check_portability(path, *manifest.aoti);
    const PrivateDirectory directory;
    try {
      extract_package(archive, directory.path());
      archive.file()->check_unchanged();  // the extracted bytes are the verified ones
      // One model instance per concurrent run: the container hands each run() a free instance
      // and makes a caller wait only when all are busy. Instances share the weights; each
      // costs well under 1 MB at load (docs/format.md), so there are enough for every
      // hardware thread (serve's workers, batch threads) and never fewer than kMinInstances.
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          directory.path(), manifest.aoti->model_name, /*run_single_threaded=*/false,
          /*num_runners=*/model_instances(), /*device_index=*/-1);
    } catch (const LoadError&) {
      throw;
    } catch (const c10::Error& error) {
      throw LoadError("cannot load the AOTInductor package " + path + ": " +
                      first_sentence(error.msg()));
    } catch (const std::exception& error) {
      throw LoadError("cannot load the AOTInductor package " + path + ": " +
                      first_sentence(error.what()));
    }
    // The shared object is mapped now; the extracted files go with `directory`.
    reason_ = "AOTInductor package compiled for " +
              (manifest.aoti->isa == "native"
                   ? "the exporting CPU (" + joined(manifest.aoti->cpu_isa) + ")"
                   : manifest.aoti->isa);
  }

  std::vector<at::Tensor> run(std::vector<at::Tensor> inputs, int64_t /*bucket*/) const override {
    // The compiled kernels open OpenMP regions of their own: this thread takes the runner's
    // thread count as ATen's operators do on their first parallel call.
    at::internal::lazy_init_num_threads();
    for (at::Tensor& tensor : inputs) {
      if (!tensor.is_contiguous()) tensor = tensor.contiguous();
    }
    try {
      return loader_->run(inputs);
    } catch (const c10::Error& error) {
      throw Error("model run failed: " + first_sentence(error.msg()));
    } catch (const std::exception& error) {
      throw Error("model run failed: " + first_sentence(error.what()));
    }
  }

  const std::string& kernel_path() const override { return kernel_path_; }
  const std::string& kernel_path_reason() const override { return reason_; }

 private:
  std::string kernel_path_ = "aoti";
  std::string reason_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

}  // namespace

bool is_aoti_package(const Archive& archive) {
  caffe2::serialize::PyTorchStreamReader& reader = archive.reader();
  if (!reader.hasRecord("archive_format")) return false;
  const auto [data, size] = reader.getRecord("archive_format");
  return std::string(static_cast<const char*>(data.get()), size) == "pt2";
}

std::unique_ptr<Engine> load_aoti_engine(const Archive& archive, const Manifest& manifest,
                                         const RunnerOptions& options) {
  return std::make_unique<AotiEngine>(archive, manifest, options);
}

}  // namespace tsrunner::detail
