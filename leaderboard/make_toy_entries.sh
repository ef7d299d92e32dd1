#!/usr/bin/env bash
# Regenerate the four toy-world entries from fresh runs, verify them by regeneration (each
# verify-entry re-runs the method on the toy backbone and judges its own images with the oracle
# pinned for the toy configs), sign the records and render the table. Run it from a committed
# tree: verify-entry refuses to sign when the package's files differ from their commit.
#
#   leaderboard/make_toy_entries.sh KEY [RUNS]
#
# KEY is the maintainers' Ed25519 private key (PEM; never inside the repository). RUNS is a
# folder for the four runs (default runs/toy-entries); it must not exist yet, so that every
# figure comes from this invocation. Set SLIM_EVAL to the command to use (default slim-eval)
# and JOBS to the number of runs made at once (default 1). The runs skip the single-entity
# reference images: the oracle judge does not read them.
# Cost figures are measured on the machine that runs this: run it on a quiet one, with JOBS=1.
set -euo pipefail
cd "$(dirname "$0")/.."

key=${1:?usage: leaderboard/make_toy_entries.sh KEY [RUNS]}
runs=${2:-runs/toy-entries}
slim_eval=${SLIM_EVAL:-slim-eval}
jobs=${JOBS:-1}
if [ -e "$runs" ]; then
  echo "make_toy_entries: $runs exists; give a new folder so that every run is fresh" >&2
  exit 2
fi
notes="Toy world (slim-eval's embedded default): backbone toy, judge oracle (exact measurements, \
not a VLM), config toy-pairs. The leaderboard pins the oracle for the toy configs, so anyone can \
re-judge this entry offline."

# run folder | display name | method options
table='deleaker|deleaker (toy)|deleaker
deleaker-nosmooth|deleaker smoothing=false (toy)|deleaker --method-arg smoothing=false
instruction-prompt|instruction-prompt (toy)|instruction-prompt
vanilla|vanilla (toy)|vanilla'

mkdir -p "$runs"
while IFS='|' read -r run name options; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  # shellcheck disable=SC2086  # the options are separate words on purpose
  $slim_eval --method $options --out "$runs/$run" --no-references --no-progress \
    </dev/null >"$runs/$run.log" 2>&1 &
done <<<"$table"
while [ -n "$(jobs -rp)" ]; do wait -n; done
for run in deleaker deleaker-nosmooth instruction-prompt vanilla; do
  if [ ! -f "$runs/$run/metrics.json" ]; then
    echo "make_toy_entries: the $run run did not finish; see $runs/$run.log" >&2
    exit 1
  fi
done

while IFS='|' read -r run name options; do
  $slim_eval submit "$runs/$run" --out "leaderboard/entries/toy-$run.json" --name "$name" \
    --notes "$notes" --submitter "slim-leakage maintainers" --force </dev/null
done <<<"$table"

for run in deleaker deleaker-nosmooth instruction-prompt vanilla; do
  entry=toy-$run
  $slim_eval verify-entry "leaderboard/entries/$entry.json" --images "$runs/$run" --key "$key"
done
$slim_eval validate leaderboard/entries/*.json
$slim_eval leaderboard render leaderboard/ --out "$runs/site" --readme leaderboard/README.md
