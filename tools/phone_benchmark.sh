#!/usr/bin/env bash
# Measure an ncnn bundle on an Android phone with ncnn's benchncnn, over adb.
#
#   python tools/profile_device.py --space mbv3-small --export-ncnn bundle/ --num-archs 300
#   BENCHNCNN=path/to/android/arm64-v8a/benchncnn tools/phone_benchmark.sh bundle/ results.txt
#   python tools/profile_device.py --import results.txt --bundle bundle/ --device pixel-7 --out pixel-7.jsonl
#
# Needs: adb with exactly one phone connected (USB debugging on), and benchncnn
# built for the phone's ABI (ncnn's Android release zip ships it, or build ncnn
# with -DNCNN_BUILD_BENCHMARK=ON). benchncnn reads only the .param files and
# fills weights itself; models are given as param=... shape=[w,h,c].
#
# Environment knobs: REPEATS (runs per model, default 30), LOOPS (inferences
# averaged per run, default 1), THREADS (default 1), POWERSAVE (0 all cores,
# 1 little, 2 big; default 2). Keep the phone plugged in, screen on, idle.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: BENCHNCNN=/path/to/benchncnn $0 BUNDLE_DIR RESULTS_FILE" >&2
    exit 2
fi
bundle=$1
results=$2
: "${BENCHNCNN:?set BENCHNCNN to the benchncnn binary built for the phone}"
REPEATS=${REPEATS:-30}
LOOPS=${LOOPS:-1}
THREADS=${THREADS:-1}
POWERSAVE=${POWERSAVE:-2}
remote=/data/local/tmp/ofa-hw

[ -f "$bundle/benchncnn.txt" ] || { echo "$bundle/benchncnn.txt missing: run profile_device.py --export-ncnn first" >&2; exit 2; }

adb shell "rm -rf $remote && mkdir -p $remote"
adb push "$BENCHNCNN" "$remote/benchncnn" >/dev/null
adb shell chmod 755 "$remote/benchncnn"
adb push "$bundle/models" "$remote/" >/dev/null
adb push "$bundle/benchncnn.txt" "$remote/benchncnn.txt" >/dev/null

# The loop runs on the phone (one adb call in all); every benchncnn call is one
# sample: "<id> <repeat> <benchncnn output line with min/max/avg>".
adb shell "cd $remote && while read id shape; do r=1; while [ \$r -le $REPEATS ]; do \
./benchncnn $LOOPS $THREADS $POWERSAVE -1 0 param=models/\$id.param shape=\$shape 2>/dev/null \
| grep 'min =' | sed \"s/^/\$id \$r /\"; r=\$((r+1)); done; done < benchncnn.txt > runs.txt"

{
    echo "# model = $(adb shell getprop ro.product.model | tr -d '\r')"
    echo "# soc = $(adb shell getprop ro.soc.model | tr -d '\r')"
    echo "# android = $(adb shell getprop ro.build.version.release | tr -d '\r')"
    echo "# abi = $(adb shell getprop ro.product.cpu.abi | tr -d '\r')"
    echo "# threads = $THREADS"
    echo "# loops = $LOOPS"
    echo "# repeats = $REPEATS"
    echo "# powersave = $POWERSAVE"
    adb shell cat "$remote/runs.txt" | tr -d '\r'
} > "$results"
adb shell "rm -rf $remote"
echo "wrote $results ($(grep -vc '^#' "$results") runs)"
