# Oniguruma, the regex engine HF tokenizers uses (its `onig` crate builds Oniguruma 6.9.8, the
# version Debian's libonig-dev ships): the tokenizer's patterns must mean what they mean there.
# Debian ships it only as a shared library, so a wheel carries a copy of it next to
# libtsrunner (found through libtsrunner's $ORIGIN RUNPATH): what gets built runs on machines
# without libonig5, as with the statically linked utf8proc and libcrypto.
find_package(PkgConfig REQUIRED)
pkg_check_modules(oniguruma REQUIRED oniguruma)
find_library(TSR_ONIGURUMA_LIBRARY NAMES onig HINTS ${oniguruma_LIBRARY_DIRS} REQUIRED)
get_filename_component(TSR_ONIGURUMA_REAL "${TSR_ONIGURUMA_LIBRARY}" REALPATH)
add_library(tsr_oniguruma SHARED IMPORTED)
set_target_properties(tsr_oniguruma PROPERTIES
  IMPORTED_LOCATION "${TSR_ONIGURUMA_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${oniguruma_INCLUDE_DIRS}")

# Installs the library under its SONAME (a wheel cannot hold symlinks).
function(tsr_install_oniguruma destination)
  execute_process(COMMAND readelf -d "${TSR_ONIGURUMA_REAL}" OUTPUT_VARIABLE _dynamic)
  string(REGEX MATCH "Library soname: \\[([^]]+)\\]" _match "${_dynamic}")
  if(NOT CMAKE_MATCH_1)
    message(FATAL_ERROR "no SONAME in ${TSR_ONIGURUMA_REAL}")
  endif()
  install(FILES "${TSR_ONIGURUMA_REAL}" DESTINATION "${destination}" RENAME "${CMAKE_MATCH_1}")
endfunction()
