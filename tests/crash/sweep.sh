#!/usr/bin/env bash
# tests/crash/sweep.sh: the crash-consistency sweep. A two-stage training run is killed with
# SIGKILL just before and just after each call that makes a write durable or visible (rename,
# fsync, fdatasync, remove, unlink; counted by the LD_PRELOAD shim tests/crash/killpoint.c), then
# resumed with `ldmcl-train --resume`; every file the finished run leaves must then equal, byte
# for byte, what an uninterrupted run leaves (train_log.csv without its wall-clock column), and
# no temporary file may remain.
#   tests/crash/sweep.sh [CONFIG] [BUILD_DIR]     (default: configs/fashion_mnist_smoke.ini, build)
#   JOBS=N      runs at once (default: the number of cores)
#   POINTS="3 7:after"   only these kill points (K or K:before / K:after), e.g. to rerun a failure
#   KEEP=1      keep the work folder (it is printed)
# Relative paths in the config are resolved against the config's folder as ldmcl-train does.
# Each run has a folder of its own holding the same config (run.ini) and writing into out/, so
# that the paths a run records (the config's, in checkpoints) are the same in every run. Exit
# status 0 when every point recovered.
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-configs/fashion_mnist_smoke.ini}
build=${2:-build}
train=$(realpath "$build/ldmcl-train")
shim=$(realpath "$build/tests/libldmcl_killpoint.so")
[ -x "$train" ] || { echo "sweep: $train is not built (tools/setup.sh)" >&2; exit 2; }
[ -f "$shim" ] || { echo "sweep: $shim is not built (tools/setup.sh)" >&2; exit 2; }
jobs=${JOBS:-$(nproc)}
work=$(mktemp -d "${TMPDIR:-/tmp}/ldmcl-crash.XXXXXX")
[ -n "${KEEP:-}" ] && echo "sweep: work folder $work" || trap 'rm -rf "$work"' EXIT

# The config with its paths made absolute and output_dir left as a placeholder.
config_dir=$(cd "$(dirname "$config")" && pwd)
while IFS= read -r line; do
    if [[ $line =~ ^([a-z_]+)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
        key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
        case $key in
        output_dir) line="output_dir = out" ;;
        path | vocab | clip_path | lpips_path | checkpoint | resume_from_checkpoint)
            [[ -n $value && $value != /* && $value != latest ]] && line="$key = $config_dir/$value" ;;
        esac
    fi
    printf '%s\n' "$line"
done <"$config" >"$work/config.template"

# make_config NAME: the folder $work/NAME with run.ini, which writes into $work/NAME/out
make_config() { mkdir -p "$work/$1" && cp "$work/config.template" "$work/$1/run.ini"; }

# The uninterrupted run (twice: the first warms the kernel caches, so that the second, which is
# the reference, counts only the run's own calls).
for name in warm reference; do
    make_config "$name"
    (cd "$work/$name" && LD_PRELOAD=$shim LDMCL_KILL_COUNT="$work/$name.count" "$train" run.ini) \
        >"$work/$name.log" 2>&1 || { echo "sweep: the uninterrupted run failed:"; cat "$work/$name.log"; exit 1; }
done
total=$(cat "$work/reference.count")
echo "sweep: $total kill points, each killed before and after the call ($jobs at a time)"

# One point: kill, resume, compare. Prints one line; exit status 1 on a difference.
run_point() {
    local k=$1 when=$2 name="kill-$1-$2"
    make_config "$name"
    set +e
    local killed # (the subshell keeps the shell's "Killed" report out of the output)
    killed=$({ (cd "$work/$name" && LD_PRELOAD=$shim LDMCL_KILL_AT=$k LDMCL_KILL_WHEN=$when \
        exec "$train" run.ini >"$work/$name.log" 2>&1); echo $?; } 2>/dev/null)
    (cd "$work/$name" && "$train" run.ini --resume) >>"$work/$name.log" 2>&1
    local resumed=$?
    set -e
    local problems=""
    [ "$killed" -eq 137 ] || problems+=" the first run exited $killed, not killed;"
    [ "$resumed" -eq 0 ] || problems+=" --resume exited $resumed;"
    if [ "$resumed" -eq 0 ]; then
        local diffs
        diffs=$(compare_trees "$work/reference/out" "$work/$name/out")
        [ -z "$diffs" ] || problems+="$diffs"
    fi
    if [ -n "$problems" ]; then
        echo "point $k $when: FAILED:$problems (log: $work/$name.log)"
        return 1
    fi
    echo "point $k $when: recovered"
    rm -rf "${work:?}/$name"
}

# compare_trees A B: prints what differs between two output folders.
compare_trees() {
    local a=$1 b=$2 out=""
    local la lb
    la=$(cd "$a" && find . -type f | sort)
    lb=$(cd "$b" && find . -type f | sort)
    [ "$la" = "$lb" ] || out+=" files differ: $(diff <(echo "$la") <(echo "$lb") | grep '^[<>]' | tr '\n' ' ');"
    while IFS= read -r f; do
        [ -f "$b/$f" ] || continue
        if [ "$(basename "$f")" = train_log.csv ]; then # its last column is wall-clock seconds
            cmp -s <(cut -d, -f1-3 "$a/$f") <(cut -d, -f1-3 "$b/$f") || out+=" $f differs;"
        else
            cmp -s "$a/$f" "$b/$f" || out+=" $f differs;"
        fi
    done <<<"$la"
    printf '%s' "$out"
}
export -f run_point compare_trees make_config
export work train shim

if [ -n "${POINTS:-}" ]; then
    points=""
    for p in $POINTS; do
        case $p in
        *:*) points+="${p%%:*} ${p##*:}"$'\n' ;;
        *) points+="$p before"$'\n'"$p after"$'\n' ;;
        esac
    done
else
    points=$(for k in $(seq 1 "$total"); do printf '%s before\n%s after\n' "$k" "$k"; done)
fi
set +e
printf '%s' "$points" | xargs -P "$jobs" -L 1 bash -c 'run_point "$0" "$1"' >"$work/results.txt"
set -e
sort -n -k2 "$work/results.txt"
failed=$(grep -c FAILED "$work/results.txt" || true)
tried=$(wc -l <"$work/results.txt")
echo "sweep: $((tried - failed)) of $tried kill points recovered to the uninterrupted run's files"
[ "$failed" -eq 0 ]
