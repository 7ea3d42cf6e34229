# tsrunner/version_macros.h: TSRUNNER_VERSION_MAJOR/MINOR/PATCH/STRING generated from
# PROJECT_VERSION (itself read from python/tsrunner/_version.py by the top-level CMakeLists.txt).
# Written into the build tree, never the source tree; on the target's include path while
# building (tests built in-tree included) and installed beside the other public headers.
#
# tsr_add_version_header(targets...): generates the header and attaches it to each target.
function(tsr_add_version_header)
  foreach(part MAJOR MINOR PATCH)
    set(TSR_VERSION_${part} "${PROJECT_VERSION_${part}}")
    if(TSR_VERSION_${part} STREQUAL "")
      set(TSR_VERSION_${part} 0)  # "1.2" is 1.2.0
    endif()
  endforeach()
  set(generated_include "${PROJECT_BINARY_DIR}/generated/include")
  configure_file("${PROJECT_SOURCE_DIR}/cmake/version_macros.h.in"
                 "${generated_include}/tsrunner/version_macros.h" @ONLY)
  foreach(target IN LISTS ARGV)
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${generated_include}>)
  endforeach()
  install(FILES "${generated_include}/tsrunner/version_macros.h"
          DESTINATION "${TSR_INSTALL_INCLUDEDIR}/tsrunner")
endfunction()
