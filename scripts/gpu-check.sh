#!/usr/bin/env bash
# Runs on the GPU machine, over binaries packed here by ../shared/gpu/pack:
#   ../shared/gpu/pack --bin fa -- -p fa-runtime -p fa-cli --features fa-runtime/gpu
# then (device tool, carry [".gpu"]):  bash scripts/gpu-check.sh [tests|bench|sanitize|all]
# Correctness tests first, then the forward benchmark and the PyTorch SDPA anchor
# in the same call, then compute-sanitizer on a representative subset.
set -uo pipefail
what=${1:-all}
out=${OUT:-/tmp/fa-out}; mkdir -p "$out"
export FA_CACHE_DIR=/tmp/fa-cache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
status=0
if [[ $what == all || $what == tests ]]; then
    for t in .gpu/bin/gpu_*-test; do
        echo "== $t"
        "$t" --test-threads=4 2>&1 | tee "$out/$(basename "$t").log" | grep -E "^test |test result|panicked|FAIL|max_err" || status=1
    done
fi
if [[ $what == all || $what == bench ]]; then
    # Both layouts: [b, s, h, d] (ours) and [b, h, s, d], which is what the
    # anchor hands PyTorch's SDPA (the like-for-like comparison).
    echo "== fa bench"
    .gpu/bin/fa bench ${FA_BENCH_ARGS:-} > "$out/fa_bench.csv" 2> "$out/fa_bench.err" || status=1
    cat "$out/fa_bench.err"
    echo "== fa bench --head-major"
    .gpu/bin/fa bench --head-major ${FA_BENCH_ARGS:-} > "$out/fa_bench_hm.csv" 2> "$out/fa_bench_hm.err" || status=1
    echo "== sdpa anchor"
    for dt in bf16 f16; do
        python3 .gpu/bench/sdpa_anchor.py --dtype $dt --dims 64,128,256 --backends flash,cudnn > "$out/sdpa_$dt.csv" || status=1
    done
    echo "-- ours [b, s, h, d] vs SDPA"
    python3 scripts/compare_bench.py "$out/fa_bench.csv" "$out"/sdpa_*.csv | tee "$out/compare.txt"
    echo "-- ours [b, h, s, d] (same layout as SDPA's inputs) vs SDPA"
    python3 scripts/compare_bench.py "$out/fa_bench_hm.csv" "$out"/sdpa_*.csv | tee "$out/compare_hm.txt"
fi
if [[ $what == all || $what == sanitize ]]; then
    # forward tests (FA_SANITIZE_FILTER) and the split-KV decode tests
    # (FA_SANITIZE_PAGED_FILTER; "-" skips them)
    for tool in memcheck racecheck; do
        for bin in gpu_forward gpu_paged; do
            if [[ $bin == gpu_forward ]]; then filter=${FA_SANITIZE_FILTER:-every_head_dim_f16_and_bf16}
            else filter=${FA_SANITIZE_PAGED_FILTER:-decode_}; fi
            [[ $filter == - ]] && continue
            echo "== compute-sanitizer $tool $bin ($filter)"
            compute-sanitizer --tool $tool --error-exitcode 9 .gpu/bin/$bin-test --test-threads=1 \
                $filter > "$out/sanitize_${bin}_$tool.log" 2>&1
            rc=$?; tail -3 "$out/sanitize_${bin}_$tool.log"; echo "$tool $bin exit $rc"; [[ $rc == 0 ]] || status=1
        done
    done
fi
exit $status
