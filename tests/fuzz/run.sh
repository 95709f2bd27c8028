#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS_PER_TARGET]: runs the libFuzzer targets of a fuzz build (it builds
# nothing: configure with CC=clang -DLDMCL_FUZZ=ON, see tests/fuzz/README.md).
#   1. regression: every committed input of tests/fuzz/corpus/<target>/ through its target;
#   2. fuzzing: each target for SECONDS_PER_TARGET seconds (default 5: about a minute for all),
#      starting from its committed corpus, with its dictionary and input size limit.
# New inputs and findings (crash-*, leak-*, timeout-*, oom-*) go into a temporary folder, kept and
# named at the end when something failed. Any crash, sanitizer report, leak, timeout (-timeout=10)
# or memory blow-up (-rss_limit_mb=2048) fails the run (non-zero exit).
#   BUILD_DIR=dir       the fuzz build (default build-fuzz)
#   FUZZ_TARGETS="..."  only these targets (e.g. "json png")
#   FUZZ_OUT=dir        put the new inputs, findings and logs there (kept), not in a temporary folder
#   FUZZ_FLAGS="..."    more libFuzzer flags for the fuzzing step (e.g. "-use_value_profile=1")
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-5}
build=${BUILD_DIR:-build-fuzz}
all_targets=(json safetensors ini run_config png jpeg gemm_tuning clip_bpe clip_dir clip_tokenize
             dataset latent_cache train_state sd_model lora)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"

# The largest input each target tries: a few times its largest real example.
max_len() {
    case $1 in
    gemm_tuning | clip_tokenize) echo 2048 ;;
    json | safetensors | ini) echo 4096 ;;
    run_config | latent_cache | train_state) echo 8192 ;;
    dataset) echo 32768 ;;
    *) echo 16384 ;;
    esac
}

for t in "${targets[@]}"; do
    if [ ! -x "$build/tests/fuzz/fuzz_$t" ]; then
        echo "run.sh: no $build/tests/fuzz/fuzz_$t: build with" >&2
        echo "  BUILD_DIR=$build CC=clang CMAKE_ARGS=\"-DLDMCL_FUZZ=ON -DLDMCL_BUILD_TESTS=OFF" \
             "-DLDMCL_WERROR=OFF\" tools/setup.sh" >&2
        exit 2
    fi
done

if [ -n "${FUZZ_OUT:-}" ]; then
    work=$FUZZ_OUT
    mkdir -p "$work"
    keep=1
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/ldmcl-fuzz-run.XXXXXX")
    keep=0
fi
# The targets' per-process files (rewritten for every input) live in memory when there is some.
scratch_parent=/dev/shm
[ -d "$scratch_parent" ] && [ -w "$scratch_parent" ] || scratch_parent=${TMPDIR:-/tmp}
scratch=$(mktemp -d "$scratch_parent/ldmcl-fuzz-scratch.XXXXXX")
export LDMCL_FUZZ_TMPDIR=$scratch
# pocl and its LLVM keep allocations until exit (fuzz_train_state opens the OpenCL device).
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
common=(-timeout=10 -rss_limit_mb=2048)

failed=()
finish() {
    rm -rf "$scratch"
    if [ ${#failed[@]} -gt 0 ]; then
        echo
        echo "run.sh: FAILED: ${failed[*]}"
        echo "run.sh: logs, findings and new inputs are in $work"
        echo "run.sh: reproduce one with $build/tests/fuzz/fuzz_<target> <file>"
        exit 1
    fi
    if [ "$keep" = 1 ]; then
        echo "run.sh: all passed; new inputs and logs are in $work"
    else
        rm -rf "$work"
        echo "run.sh: all passed"
    fi
}
trap finish EXIT

# A libFuzzer run, its output into $work/<name>.log; on failure, says so with the log's end.
run_fuzzer() {
    local label=$1 name=$2 limit=$3
    shift 3
    timeout --kill-after=30 "$limit" "$@" >"$work/$name.log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] && return 0
    echo "$label: FAILED (exit $rc$([ $rc -eq 124 ] && echo ': killed after '"$limit"' s'));" \
         "the end of $work/$name.log:"
    grep -v '^INFO: \|^#[0-9]' "$work/$name.log" | tail -n 60 | sed 's/^/    /'
    failed+=("$name")
    return 1
}

stat_of() {
    sed -n "s/^stat::$2: *//p" "$work/$1.log" | tail -n 1
}

echo "== regression: the committed corpora of tests/fuzz/corpus/"
for t in "${targets[@]}"; do
    shopt -s nullglob
    inputs=(tests/fuzz/corpus/"$t"/*)
    shopt -u nullglob
    if [ ${#inputs[@]} -eq 0 ]; then
        echo "fuzz_$t: no committed inputs"
        continue
    fi
    run_fuzzer "fuzz_$t" "regress-$t" 600 "$build/tests/fuzz/fuzz_$t" "${common[@]}" \
        "${inputs[@]}" && echo "fuzz_$t: ${#inputs[@]} inputs passed"
done

echo
echo "== fuzzing: ${seconds} s per target"
mkdir -p "$work/findings"
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t"
    # shellcheck disable=SC2086
    run_fuzzer "fuzz_$t" "fuzz-$t" $((seconds + 300)) "$build/tests/fuzz/fuzz_$t" "${common[@]}" \
        -max_total_time="$seconds" -max_len="$(max_len "$t")" -dict="tests/fuzz/$t.dict" \
        -artifact_prefix="$work/findings/$t-" -print_final_stats=1 ${FUZZ_FLAGS:-} \
        "$work/corpus/$t" "tests/fuzz/corpus/$t" &&
        echo "fuzz_$t: $(stat_of "fuzz-$t" number_of_executed_units) runs," \
             "$(stat_of "fuzz-$t" average_exec_per_sec) exec/s," \
             "$(stat_of "fuzz-$t" new_units_added) new inputs," \
             "peak RSS $(stat_of "fuzz-$t" peak_rss_mb) MB"
done
