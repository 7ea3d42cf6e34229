# utf8proc (the tokenizer's Unicode tables) and OpenSSL's libcrypto (SHA-256 of archives) are
# linked into libtsrunner statically, from Debian's libutf8proc-dev and libssl-dev (both .a
# archives are position-independent), and cpp/CMakeLists.txt keeps their symbols out of
# libtsrunner's dynamic symbol table. So a wheel built here runs on machines without
# libutf8proc2/libssl3, and an app that links another OpenSSL binds to its own, never to ours.
# Both stay build-time dependencies only (scripts/install-system-deps.sh); the installed CMake
# package does not ask for them.

# A build dir configured when libcrypto was linked as a shared library keeps the .so cached.
foreach(_tsr_cached OPENSSL_CRYPTO_LIBRARY OPENSSL_SSL_LIBRARY)
  if(${_tsr_cached} AND NOT ${_tsr_cached} MATCHES "\\.a$")
    unset(${_tsr_cached} CACHE)
  endif()
endforeach()
set(OPENSSL_USE_STATIC_LIBS TRUE)
find_package(OpenSSL 3.0 REQUIRED COMPONENTS Crypto)

# utf8proc ships a pkg-config file but no CMake config, and pkg-config names only -lutf8proc.
find_package(PkgConfig REQUIRED)
pkg_check_modules(utf8proc REQUIRED libutf8proc)
find_library(TSR_UTF8PROC_STATIC_LIBRARY NAMES libutf8proc.a
             HINTS ${utf8proc_LIBRARY_DIRS} REQUIRED)
add_library(tsr_utf8proc_static STATIC IMPORTED)
set_target_properties(tsr_utf8proc_static PROPERTIES
  IMPORTED_LOCATION "${TSR_UTF8PROC_STATIC_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${utf8proc_INCLUDE_DIRS}"
  INTERFACE_COMPILE_DEFINITIONS UTF8PROC_STATIC)
