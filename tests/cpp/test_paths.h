#pragma once

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>

namespace tsrunner::testing {

// Models made by tests/data/make_fixtures.py; `make test` points TSR_FIXTURES at them.
inline std::string fixture(const std::string& name) {
  const char* directory = std::getenv("TSR_FIXTURES");
  if (directory == nullptr || *directory == '\0') {
    throw std::runtime_error(
        "TSR_FIXTURES is not set: run `make test`, or python tests/data/make_fixtures.py DIR "
        "and TSR_FIXTURES=DIR ctest");
  }
  return std::string(directory) + "/" + name;
}

// Every byte of a file (empty when it cannot be read).
inline std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

inline std::string read_data_file(const std::string& relative) {
  std::ifstream file(std::string(TSR_TEST_DATA_DIR) + "/" + relative);
  if (!file) throw std::runtime_error("missing test data file " + relative);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace tsrunner::testing
