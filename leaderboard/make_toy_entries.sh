#!/usr/bin/env bash
# Regenerate the four toy-world entries from fresh runs, verify them with the oracle judge
# pinned for the toy configs, sign the records and render the table.
#
#   leaderboard/make_toy_entries.sh KEY [RUNS]
#
# KEY is the maintainers' Ed25519 private key (PEM; never inside the repository). RUNS is a
# folder for the four runs (default runs/toy-entries); it must not exist yet, so that every
# figure comes from this invocation. Set SLIM_EVAL to the command to use (default slim-eval).
# Cost figures are measured on the machine that runs this: run it on a quiet one.
set -euo pipefail
cd "$(dirname "$0")/.."

key=${1:?usage: leaderboard/make_toy_entries.sh KEY [RUNS]}
runs=${2:-runs/toy-entries}
slim_eval=${SLIM_EVAL:-slim-eval}
if [ -e "$runs" ]; then
  echo "make_toy_entries: $runs exists; give a new folder so that every run is fresh" >&2
  exit 2
fi
notes="Toy world (slim-eval's embedded default): backbone toy, judge oracle (exact measurements, \
not a VLM), config toy-pairs. The leaderboard pins the oracle for the toy configs, so anyone can \
re-judge this entry offline."

# name | entry file | display name | method options
while IFS='|' read -r run entry name options; do
  # shellcheck disable=SC2086  # the options are separate words on purpose
  $slim_eval --method $options --out "$runs/$run" --no-progress </dev/null
  $slim_eval submit "$runs/$run" --out "leaderboard/entries/$entry.json" --name "$name" \
    --notes "$notes" </dev/null
done <<'TABLE'
deleaker|toy-deleaker|deleaker (toy)|deleaker
deleaker-nosmooth|toy-deleaker-nosmooth|deleaker smoothing=false (toy)|deleaker --method-arg smoothing=false
instruction-prompt|toy-instruction-prompt|instruction-prompt (toy)|instruction-prompt
vanilla|toy-vanilla|vanilla (toy)|vanilla
TABLE

for run in deleaker deleaker-nosmooth instruction-prompt vanilla; do
  entry=toy-$run
  $slim_eval verify-entry "leaderboard/entries/$entry.json" --images "$runs/$run" --key "$key"
done
$slim_eval validate leaderboard/entries/*.json
$slim_eval leaderboard render leaderboard/ --out "$runs/site" --readme leaderboard/README.md
