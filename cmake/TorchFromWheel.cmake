# Finds LibTorch inside the installed torch wheel, so the C++ side is built against the exact
# torch (and C++ ABI) that will run it: the one importable by Python_EXECUTABLE. Defines the
# imported `torch` target; TORCH_INSTALL_PREFIX points at site-packages/torch.
if(NOT Python_EXECUTABLE)
  find_package(Python 3.10 REQUIRED COMPONENTS Interpreter)
endif()
set(TSR_PYTHON_EXECUTABLE "${Python_EXECUTABLE}")

execute_process(
  COMMAND "${TSR_PYTHON_EXECUTABLE}" -c
          "import torch, torch.utils; print(torch.utils.cmake_prefix_path); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
  OUTPUT_VARIABLE _tsr_torch_answer
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _tsr_torch_result)
if(NOT _tsr_torch_result EQUAL 0)
  message(FATAL_ERROR "tsrunner: `import torch` failed with ${TSR_PYTHON_EXECUTABLE}. "
                      "Install torch==2.13.0 first (make setup does this).")
endif()
string(REPLACE "\n" ";" _tsr_torch_answer "${_tsr_torch_answer}")
list(GET _tsr_torch_answer 0 _tsr_torch_prefix)
# The C++ ABI LibTorch was built with, for the pkg-config file (torch 2.13's CMake leaves
# TORCH_CXX_FLAGS empty, so it does not say).
list(GET _tsr_torch_answer 1 TSR_TORCH_CXX11_ABI)
list(APPEND CMAKE_PREFIX_PATH "${_tsr_torch_prefix}")
find_package(Torch REQUIRED CONFIG)
include(tsrunnerRuntime)
_tsrunner_drop_missing_torch_link_directories()
message(STATUS "tsrunner: LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}")
