#!/usr/bin/env bash
# tests/sim/run.sh: the op tests under the Oclgrind GPU simulator, which reports data races in
# global and local memory, reads and writes out of bounds, uninitialised values, barrier
# divergence and OpenCL API misuse that pocl hides. Oclgrind reports itself as a GPU, so the
# kernels run in their GPU layouts; the op harness runs the cases small enough for a simulator
# ($LDMCL_TEST_SIMULATOR elements, each case once, every op at least once: tests/op_harness.h).
# Any report in one of ldmcl's kernels (cl/*.cl) fails the run; reports in kernels that are not
# ldmcl's (CLBlast's GEMMs) are counted apart and do not. Each test's whole log is kept.
#   tests/sim/run.sh [BUILD_DIR [TEST...]]     (default: build, every op test below)
#   SIM_BUDGET=N   elements per case (default 2000)   SIM_JOBS=N   tests at once (default nproc)
#   SIM_TIMEOUT=S  seconds a test may take (default 1800: a hang detector, not a budget; test_conv
#                  took 484 s on an Intel Xeon VM and over 900 s on a CI machine)
# Needs the Debian package oclgrind (EXTRA_PACKAGES=oclgrind tools/setup.sh). Kernels are built
# with -cl-opt-disable: Oclgrind 21.10's uninitialised-value plugin stops on LLVM's `freeze`
# instruction, which optimised builds contain (fixed upstream after 21.10, Oclgrind PR #220).
# Host writes, fills and copies run as kernels there (src/core/transfer.c says why).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=$(realpath "${1:-build}")
shift || true
tests=("$@")
# (the slowest first, so that two at a time finish together)
[ ${#tests[@]} -gt 0 ] || tests=(test_conv test_attention test_norm test_diffusion test_reduce
    test_linear test_misc test_elementwise test_optim test_rng test_vq test_pool test_layout)
command -v oclgrind >/dev/null || { echo "sim: oclgrind is missing (apt install oclgrind)" >&2; exit 2; }
out=${SIM_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/ldmcl-sim.XXXXXX")}
mkdir -p "$out"
# ldmcl's kernels: every kernel in cl/, as the build read their signatures
args_h="$build/generated/kernels/kernel_args.h"
[ -f "$args_h" ] || { echo "sim: $args_h is missing (build first)" >&2; exit 2; }
ours=$(grep -o 'ldm_kernel_check_args(kernel, "[A-Za-z_0-9]*"' "$args_h" | cut -d'"' -f2 | sort -u)

one() {
    local t=$1 start end rc
    start=$(date +%s)
    LDMCL_TEST_SIMULATOR=${SIM_BUDGET:-2000} OCLGRIND_BUILD_OPTIONS=-cl-opt-disable \
        timeout "${SIM_TIMEOUT:-1800}" oclgrind --data-races --uninitialized --check-api "$build/tests/$t" \
        >"$out/$t.log" 2>&1
    rc=$?
    end=$(date +%s)
    echo "$rc $((end - start))" >"$out/$t.rc"
}
export -f one
export build out
printf '%s\n' "${tests[@]}" | xargs -P "${SIM_JOBS:-$(nproc)}" -I{} bash -c 'one {}'

fail=0
printf '%-18s %8s %10s %10s  %s\n' test seconds "ldmcl" "not ldmcl" result
for t in "${tests[@]}"; do
    read -r rc secs <"$out/$t.rc"
    # every diagnostic names its kernel; API errors and fatal errors name none
    mapfile -t kernels < <(grep -o 'Kernel: [A-Za-z_0-9]*' "$out/$t.log" | awk '{print $2}')
    n_ours=0 n_other=0
    for k in "${kernels[@]}"; do
        if grep -qx "$k" <<<"$ours"; then n_ours=$((n_ours + 1)); else n_other=$((n_other + 1)); fi
    done
    api=$(grep -c 'OpenCL runtime error detected\|OCLGRIND FATAL ERROR' "$out/$t.log")
    result=ok
    if [ "$rc" != 0 ]; then result="exit $rc"; fi
    if [ "$n_ours" -gt 0 ] || [ "$api" -gt 0 ]; then result="REPORTS"; fi
    [ "$result" = ok ] || fail=1
    printf '%-18s %8s %10s %10s  %s\n' "$t" "$secs" "$((n_ours + api))" "$n_other" "$result"
done
echo "sim: logs in $out"
if [ "$fail" != 0 ]; then
    echo "sim: FAILED; the first reports:" >&2
    for t in "${tests[@]}"; do
        grep -m1 -B2 -A6 'Kernel: \|OpenCL runtime error\|FATAL' "$out/$t.log" 2>/dev/null |
            sed "s/^/  $t: /" | head -12 >&2
    done
    exit 1
fi
