#!/usr/bin/env bash
# tools/setup.sh: all the set-up a fresh Debian 12 machine needs for ldmcl: installs the packages
# that are missing (apt, with sudo when not root), configures and builds into build/, and puts
# OpenAI's CLIP vocabulary into build/data/ (tools/fetch_clip_vocab.sh).
# Safe to run again; it only does what is left to do.
#   BUILD_DIR=dir        build somewhere else (default: build)
#   CMAKE_ARGS="..."     extra cmake options, e.g. -DLDMCL_SANITIZE=ON
#   EXTRA_PACKAGES="..." more Debian packages to install
# The fuzz build (CC=clang CMAKE_ARGS="-DLDMCL_FUZZ=ON ...", tests/fuzz/README.md) gets clang and
# libFuzzer installed too.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd
          libclblast-dev libpng-dev libjpeg62-turbo-dev libcmocka-dev zlib1g-dev
          python3-pip libopenmpi-dev openmpi-bin
          ${EXTRA_PACKAGES:-})
case " ${CMAKE_ARGS:-} " in
*" -DLDMCL_FUZZ=ON "*) packages+=(clang libclang-rt-14-dev) ;;
esac
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "setup: installing packages needs root: run this as root, or install sudo" >&2
            exit 1
        }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=${BUILD_DIR:-build}
echo "setup: building into $build_dir/"
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
# OpenAI's CLIP vocabulary for the tokenizer test and the demo (from PyPI's open-clip-torch wheel).
tools/fetch_clip_vocab.sh "$build_dir/data" || cat >&2 <<EOF
setup: could not fetch OpenAI's CLIP vocabulary (PyPI unreachable?). The demo and the tokenizer's
       tests need it: put bpe_simple_vocab_16e6.txt.gz (in the open_clip_torch wheel, or OpenAI's
       CLIP repository) into $build_dir/data/, or run tools/fetch_clip_vocab.sh where PyPI is reachable.
EOF
