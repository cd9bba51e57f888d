# Sourced by the end-to-end test scripts (smoke.sh, kill-test.sh, bad-inputs.sh): finds or
# builds the vit binary, makes a scratch directory and prints TAP-like results.
#
# After sourcing, from the repository root:
#   vit        absolute path of the binary under test ($VIT, else a release build in $SCRATCH_PATH)
#   threads    array with --threads $VIT_THREADS when that is set
#   work       a fresh temporary directory, removed on exit unless KEEP_WORK=1
#   fashion    the Fashion-MNIST directory ($FASHION_MNIST, default Debian's)
# and the functions ok, not_ok, skip, check, expect_status, summary and bail.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
fashion=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

if [[ -n "${VIT:-}" ]]; then
    vit=$VIT
else
    scratch=${SCRATCH_PATH:-.build}
    echo "# building release into $scratch"
    swift build -c release --scratch-path "$scratch"
    vit=$scratch/release/vit
fi
[[ "$vit" == /* ]] || vit="$root/$vit"
if [[ ! -x "$vit" ]]; then
    echo "$(basename "$0"): $vit is not an executable (run make build)" >&2
    exit 1
fi

threads=()
if [[ -n "${VIT_THREADS:-}" ]]; then threads=(--threads "$VIT_THREADS"); fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vit-$(basename "$0" .sh).XXXXXX")
cleanup_work() {
    if [[ "${KEEP_WORK:-}" == 1 ]]; then echo "# kept $work"; else rm -rf "$work"; fi
}
trap cleanup_work EXIT

passed=0
failed=0
skipped=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
# skip DESCRIPTION REASON: a check that could not run here; counted apart, never as passed.
skip() { echo "ok - $1 # SKIP $2"; skipped=$((skipped + 1)); }
# not_ok DESCRIPTION [LOG]: a failed check, with the end of LOG as comments.
not_ok() {
    echo "not ok - $1"
    failed=$((failed + 1))
    if [[ -n "${2:-}" && -s "$2" ]]; then tail -n 15 "$2" | sed 's/^/#   /'; fi
}
# check DESCRIPTION LOG COMMAND...: runs COMMAND with its output in LOG; ok when it succeeds.
check() {
    local what=$1 log=$2
    shift 2
    if "$@" >"$log" 2>&1; then ok "$what"; else not_ok "$what" "$log"; fi
}
# expect_status STATUS DESCRIPTION LOG COMMAND...: ok when COMMAND exits with STATUS.
expect_status() {
    local want=$1 what=$2 log=$3 status=0
    shift 3
    "$@" >"$log" 2>&1 || status=$?
    if [[ $status == "$want" ]]; then ok "$what"; else echo "# exit status $status, expected $want" >>"$log"; not_ok "$what" "$log"; fi
}
# summary: prints the totals and exits 1 when anything failed.
summary() {
    if ((skipped > 0)); then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
    if ((failed > 0)); then exit 1; fi
    exit 0
}
bail() {
    echo "# bailing out: $1"
    summary
}
