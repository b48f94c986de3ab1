#!/usr/bin/env bash
# Prints the size/error rows of the README table: nola compress --json on the real adapters in
# ../shared/real-loras at four settings. Columns: file, setting, ratio vs fp16 factors, the same
# counting the NOLA file's header and document (passthrough tensors left out), file ratio,
# energy-weighted error, worst layer, worst layer once expanded, output bytes, input bytes, seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
for f in peft-distilbert-imdb diffusers-sd15 diffusers-sd2-bf16; do
  for mode in "default:" "e05:--max-error 0.05" "r8:--ratio 8" "paper:--preset paper"; do
    name=${mode%%:*}; flags=${mode#*:}
    s=$(date +%s.%N)
    # shellcheck disable=SC2086
    node bin/nola.js compress "../shared/real-loras/$f" -o "$out/$f.$name.nola.safetensors" --json --log-level error $flags > "$out/$f.$name.json"
    e=$(date +%s.%N)
    node -e "
const t = require('$out/$f.$name.json').totals;
console.log('$f', '$name', t.fp16Ratio.toFixed(2), t.fileFp16Ratio.toFixed(2), t.fileRatio.toFixed(2), t.energyWeightedError.toFixed(4), t.maxError.toFixed(4), t.maxDeliveredError.toFixed(4), t.outputBytes, t.inputBytes, ($e - $s).toFixed(1));"
  done
done
rm -rf "$out"
