#!/usr/bin/env bash
# tools/device_report.sh: the one script to run when a GPU machine is lent (issue 18, part 5;
# ../shared/notes/gpu-device.md says what such a machine lacks). It builds nothing: it takes a
# build folder made here, with libOpenCL.so.1 and libclblast.so.1 copied into LIBS (the machine
# has no OpenCL packages), registers NVIDIA's OpenCL driver when its library is there but not
# registered, then runs on the first device whose name matches DEVICE:
#   ldmcl-bench --list-devices; --tune-gemm; --tune; --report --json OUT/report.json
# each under its own time limit, logs in OUT. The report's summary table is the last thing printed.
#   tools/device_report.sh [BUILD [OUT]]   env: DEVICE (default nvidia), LIBS (default BUILD/libs),
#                                          TUNE=0 to skip both tunings, LIMIT seconds per step (600)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-${OUT:-/tmp/ldmcl-device-report}}
mkdir -p "$out"
libs=${LIBS:-$build/libs}
[ -d "$libs" ] && export LD_LIBRARY_PATH="$(realpath "$libs")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia_lib=/usr/local/nvidia/lib64/libnvidia-opencl.so.1
if [ -f "$nvidia_lib" ] && ! grep -qs nvidia /etc/OpenCL/vendors/*.icd; then
    vendors=$(mktemp -d)
    echo "$nvidia_lib" >"$vendors/nvidia.icd"
    for f in /etc/OpenCL/vendors/*.icd; do [ -f "$f" ] && cp "$f" "$vendors/"; done
    export OCL_ICD_VENDORS="$vendors"
    echo "registered $nvidia_lib through OCL_ICD_VENDORS=$vendors"
fi
export LDMCL_CL_CACHE_DIR=${LDMCL_CL_CACHE_DIR:-$out/cache}
bench="$build/ldmcl-bench"
[ -x "$bench" ] || { echo "device_report: no $bench (build first)" >&2; exit 2; }
device=${DEVICE:-nvidia}
limit=${LIMIT:-600}
if ! "$bench" --list-devices | tee "$out/devices.txt" | grep -qi "$device"; then
    echo "device_report: no device matches '$device' (DEVICE=... to choose); devices above" >&2
    device=0
fi
rc=0
step() {
    local name=$1
    shift
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local s=${PIPESTATUS[0]}
    [ "$s" = 0 ] || { echo "== $name: exit $s"; rc=1; }
}
if [ "${TUNE:-1}" != 0 ]; then
    step tune-gemm "$bench" --cl-device "$device" --tune-gemm
    step tune "$bench" --cl-device "$device" --tune --warmup 2 --repeat 7
fi
step report "$bench" --cl-device "$device" --report --json "$out/report.json"
echo "logs and report.json in $out"
exit $rc
