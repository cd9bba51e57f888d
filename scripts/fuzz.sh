#!/usr/bin/env bash
# Coverage-guided fuzzing of vit's file readers with libFuzzer and AddressSanitizer.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  how long each target runs (default 60)
#   TARGET              safetensors, config, cifar, idx, npy (default: all five, one after another)
#
# Builds .build/fuzz/vit-fuzz from the reader sources and scripts/fuzz/Harness.swift with
# `swiftc -sanitize=fuzzer,address` (nothing of this touches `swift build`), seeds each target's
# corpus with valid files written by vit's own writers, and runs the targets at nice 5, one at
# a time. Corpora stay in .build/fuzz/corpus-<target> and grow from run to run; a crashing input
# is saved as .build/fuzz/crash-<target>-* and the script exits 1. Each target prints its runs,
# executions per second, coverage and corpus size.
#
# Environment: SWIFTC (default swiftc, else /opt/swift/usr/bin/swiftc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors config cifar idx npy)
[[ $seconds =~ ^[0-9]+$ ]] || { echo "error: $seconds: seconds per target must be a whole number" >&2; exit 2; }
for target in "${targets[@]}"; do
    case $target in
        safetensors | config | cifar | idx | npy) ;;
        *) echo "error: $target: unknown target (safetensors, config, cifar, idx, npy)" >&2; exit 2 ;;
    esac
done

swiftc=${SWIFTC:-$(command -v swiftc || echo /opt/swift/usr/bin/swiftc)}
[[ -x $swiftc ]] || { echo "error: swiftc not found; set SWIFTC" >&2; exit 1; }
# libFuzzer ships with the toolchain's clang runtime; without it -sanitize=fuzzer cannot link.
toolchain=$(dirname "$(dirname "$(readlink -f "$swiftc")")")
if ! compgen -G "$toolchain/lib/clang/*/lib/*/libclang_rt.fuzzer*" >/dev/null \
    && ! compgen -G "$toolchain/lib/swift/clang/lib/*/libclang_rt.fuzzer*" >/dev/null; then
    echo "error: $toolchain: no libclang_rt.fuzzer in this Swift toolchain, so -sanitize=fuzzer cannot work here" >&2
    echo "hint: the property-based tests (swift test --filter FuzzTests, VIT_FUZZ_ITERATIONS=N) cover the same readers" >&2
    exit 1
fi

out=.build/fuzz
mkdir -p "$out"
sources=(
    Sources/ViT/ViTError.swift Sources/ViT/Random.swift
    Sources/ViT/Formats/SafeTensors.swift Sources/ViT/Formats/AtomicFile.swift Sources/ViT/Formats/Npy.swift
    Sources/ViT/Formats/JSON.swift Sources/ViT/Formats/Gzip.swift
    Sources/ViT/Config/ConfigFile.swift Sources/ViT/Config/Config.swift
    Sources/ViT/Data/CIFAR.swift Sources/ViT/Data/IDX.swift Sources/ViT/Data/Dataset.swift Sources/ViT/Data/DataSource.swift
    scripts/fuzz/Harness.swift
)
binary=$out/vit-fuzz
if [[ ! -x $binary ]] || [[ -n $(find "${sources[@]}" "$0" -newer "$binary" 2>/dev/null) ]]; then
    echo "building $binary (swiftc -sanitize=fuzzer,address -O)"
    # The readers and the harness form one module named ViT, so the harness reaches the
    # internal bytes-based entry points; the linker's notes about ASan's local symbols are noise.
    nice -n 5 "$swiftc" -sanitize=fuzzer,address -parse-as-library -O -g -module-name ViT \
        "${sources[@]}" -I Sources/CZlib -lz -o "$binary" 2> >(grep -v "Cannot export local symbol" >&2)
fi

# Dictionaries: tokens libFuzzer splices into inputs.
cat >"$out/json.dict" <<'EOF'
"{"
"}"
"["
"]"
":"
","
"\""
"true"
"false"
"null"
"1e400"
"-0"
"9007199254740993"
"18446744073709551615"
"\\u"
"\\ud800"
"\"model\""
"\"data\""
"\"train\""
"\"distill\""
"\"image_size\""
"\"patch_size\""
"\"dim\""
"\"heads\""
"\"mean\""
"\"std\""
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"F16\""
"\"BF16\""
"\"I64\""
"\"I8\""
"\"BOOL\""
"train.epochs="
"model.dim="
"data.mean="
EOF

export SWIFT_BACKTRACE=enable=no  # libFuzzer reports crashes itself; the backtracer would stall it
status=0
for target in "${targets[@]}"; do
    corpus=$out/corpus-$target
    mkdir -p "$corpus"
    VIT_FUZZ_TARGET=$target VIT_FUZZ_SEEDS=$corpus "$binary" -runs=0 "$corpus" >/dev/null 2>&1 || true
    dict=()
    [[ $target == config || $target == safetensors ]] && dict=(-dict="$out/json.dict")
    log=$out/$target.log
    echo "fuzzing $target for ${seconds}s (corpus $corpus: $(find "$corpus" -type f | wc -l) files)"
    start=$SECONDS
    if VIT_FUZZ_TARGET=$target nice -n 5 "$binary" "$corpus" "${dict[@]}" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$out/crash-$target-" >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see $log and $out/crash-$target-*)"
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{ sum += $2 } END { print sum + 0 }')
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{ sum += $2 } END { print sum + 0 }')
    coverage=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{ print $2 }')
    printf '  %-12s %s: %s inputs in %ds (%s/s), coverage %s edges, corpus %s files\n' "$target" "$result" \
        "${runs:-?}" $((SECONDS - start)) "${speed:-?}" "${coverage:-?}" "$(find "$corpus" -type f | wc -l)"
done
exit $status
