#!/usr/bin/env bash
# Remake the pictures in docs/images/ that the README shows: attention maps of two Fashion-MNIST
# test images and three parts of the run report, from the model of `make run`.
#
# Needs the release build, a finished `make run` (runs/fashion-mnist) and, for the report
# screenshots, Debian's chromium, imagemagick and pngquant (not needed by the build or CI):
#   apt-get install chromium imagemagick pngquant
#
# Usage: scripts/readme-images.sh [RUN_DIR]     (default runs/fashion-mnist)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=${1:-runs/fashion-mnist}
vit=${VIT:-.build/release/vit}
out=docs/images
work=$(mktemp -d "${TMPDIR:-/tmp}/vit-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# Test image 0 (an ankle boot, predicted right) and 17 (a coat taken for a shirt).
for index in 0 17; do
    "$vit" attention "$run/model.safetensors" --index "$index" --size 112 --out "$work/maps-$index"
    cp "$work/maps-$index/overview.png" "$out/attention-test$index.png"
done

"$vit" report "$run"
chromium --headless --no-sandbox --disable-gpu --force-device-scale-factor=0.6 --window-size=1200,3000 \
    --screenshot="$work/report.png" "file://$PWD/$run/report.html" 2>/dev/null
# At 0.6 the page is 720 px wide: summary and curves, confusion and per-class, test images.
convert "$work/report.png" -crop 720x700+0+0 +repage "$out/report-curves.png"
convert "$work/report.png" -crop 720x382+0+700 +repage "$out/report-confusion.png"
convert "$work/report.png" -crop 720x410+0+1082 +repage "$out/report-samples.png"
pngquant --force --quality 50-80 --ext .png "$out"/report-*.png
ls -l "$out"
