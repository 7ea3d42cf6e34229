#!/usr/bin/env bash
# Installs the Debian packages the C++ side builds with, when any is missing:
# nlohmann/json (JSON), utf8proc (Unicode data for the tokenizer), Oniguruma (the tokenizer's
# regular expressions, the engine HF tokenizers uses; a wheel carries a copy of libonig),
# CLI11 (tsrun's command line), Boost (header-only Beast/Asio: tsrun serve's HTTP), OpenSSL's
# libcrypto (SHA-256 of archives), GoogleTest (C++ tests), binutils (readelf for the
# install tests), strace (the test that tsrun opens a model file once), pkgconf (finds
# Oniguruma and utf8proc; tests/python/test_deploy.py builds with tsrunner.pc). All are needed
# to build or test only: utf8proc and libcrypto are linked statically into libtsrunner
# (cmake/PrivateStaticDeps.cmake), so what gets built runs without them.
# Needs root (or sudo) the first time; a no-op afterwards.
#   scripts/install-system-deps.sh          what `make install` and `make test` need
#   scripts/install-system-deps.sh fuzz     also clang 19 with libFuzzer (`make fuzz`)
#   scripts/install-system-deps.sh spark    also Java 17 for PySpark 4 (`make test`'s Spark tests)
set -euo pipefail

packages=(nlohmann-json3-dev libutf8proc-dev libonig-dev libcli11-dev libboost-dev libssl-dev
  libgtest-dev binutils strace g++ pkgconf)
case "${1:-}" in
  fuzz) packages+=(clang-19 libclang-rt-19-dev) ;;
  # Spark 4 runs on Java 17 or newer; Debian 12's is 17.
  spark) packages+=(openjdk-17-jre-headless) ;;
esac
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing system packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
