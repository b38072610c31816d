#!/usr/bin/env bash
# The model card's judge rows: 30 samples (seeds 1-3, 10 x 128 steps each) from
# the README's C-major primer with the given extra generate flags, judged
# together; prints the judge's `all` line and its voice ranges.
#   tools/judge-samples.sh [GENERATE FLAGS...]     e.g. --key_prior 1 --part_writing=false
# POLYPHONY: the binary (default: the release build in ~/.cache/polyphony/target).
set -euo pipefail
bin=${POLYPHONY:-$HOME/.cache/polyphony/target/release/polyphony}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for seed in 1 2 3; do
  "$bin" generate --output_dir "$out/$seed" --num_outputs 10 --num_steps 128 \
    --primer_pitches "[67,64,60]" --condition_on_primer=true \
    --inject_primer_during_generation=false --seed "$seed" "$@" >/dev/null
done
"$bin" judge "$out"/*/*.mid | grep -E '^(all|voice ranges)'
