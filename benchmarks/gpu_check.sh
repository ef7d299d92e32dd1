#!/usr/bin/env bash
# One prepared GPU check of DeLeaker and the memory options at FLUX.1-dev's full size, with random
# weights and no downloads (about 12 minutes at most on one large GPU; each phase has its own limit):
#
#   1. overhead: the full 19 + 38-block FLUX.1-dev transformer at 1024^2 in bfloat16, planted blob
#      masks: vanilla vs fast DeLeaker time and max_memory_allocated (targets 1.15 and 1.05);
#   2. reference: the same at 512^2 with the explicit reference beside it (fast vs reference
#      maximum difference, and their time and memory);
#   3. memory: the flux-dev preset loaded from a random-weight folder with each offload /
#      quantize setting: peak max_memory_allocated per setting beside its estimate;
#   4. sd3: the full 38-block Stable Diffusion 3.5 Large MMDiT at 1024^2 in bfloat16 (38 x 64
#      heads, 77 + 256 text tokens), planted blob masks: vanilla vs fast (same targets as 1.);
#   5. flux2: the full 8 + 48-block FLUX.2 [dev] transformer at 1024^2 in bfloat16 (48 x 128
#      heads, 512 text tokens; 64 GB of weights), planted blob masks: vanilla vs fast;
#   6. qwenimage: Qwen-Image's attention width (24 x 128 heads, 512 text tokens, 2 dual-stream
#      blocks) at 512^2 and 1024^2 in bfloat16, planted masks: vanilla vs fast time and memory;
#   7. zimage: the same at Z-Image's width (30 x 128 heads, 512 text tokens, 2 main blocks).
#
# Writes one JSON object: to $OUT/gpu_check.json when OUT is set, else to stdout. A phase that
# fails or runs past its time limit is recorded as such; the others still run.
#
# The phases come in two parts, each short enough to run twice on a lent GPU whose whole loan
# is 15 minutes (its start included): `core` (1-3, at most 6 minutes) and `families` (4-7, at
# most 5.5 minutes). On a GPU the default is `core`; the CPU smoke runs both.
#
# Usage:
#   benchmarks/gpu_check.sh [--part core|families|all]               # on a CUDA GPU
#   benchmarks/gpu_check.sh --cpu-smoke [--part core|families|all]   # end to end on a CPU, tiny
# PYTHON selects the interpreter (default: python); run from the repository root.
set -uo pipefail

mode=gpu
part=
usage="usage: benchmarks/gpu_check.sh [--cpu-smoke] [--part core|families|all]"
while [[ $# -gt 0 ]]; do
    case $1 in
        --cpu-smoke) mode=cpu ;;
        --part)
            part=${2:-}
            shift
            ;;
        *)
            echo "$usage" >&2
            exit 2
            ;;
    esac
    shift
done
if [[ -z $part ]]; then
    part=$([[ $mode == gpu ]] && echo core || echo all)
fi
case $part in
    core) run=(overhead reference memory) ;;
    families) run=(sd3 flux2 qwenimage zimage) ;;
    all) run=(overhead reference memory sd3 flux2 qwenimage zimage) ;;
    *)
        echo "gpu_check: --part ${part@Q} is not core, families or all" >&2
        echo "$usage" >&2
        exit 2
        ;;
esac
python=${PYTHON:-python}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ $mode == gpu ]]; then
    overhead=(--geometry flux-dev-1024 --device cuda --dtype bfloat16 --rounds 3 --skip-reference)
    reference=(--geometry flux-dev-512 --device cuda --dtype bfloat16 --rounds 1)
    memory=(--size flux-dev --device cuda --height 512)
    sd3=(--geometry sd3-1024 --device cuda --dtype bfloat16 --rounds 3 --skip-reference)
    flux2=(--geometry flux2-1024 --device cuda --dtype bfloat16 --rounds 3 --skip-reference)
    qwenimage=(--geometry qwenimage-width --device cuda --dtype bfloat16 --rounds 3 --skip-reference)
    zimage=(--geometry zimage-width --device cuda --dtype bfloat16 --rounds 3 --skip-reference)
    limits=(150 60 150 90 120 60 60)
else
    overhead=(--geometry smoke --threads 1 --rounds 1 --skip-reference)
    reference=(--geometry smoke --threads 1 --rounds 1)
    memory=(--size tiny --device cpu --height 32)
    sd3=(--geometry sd3-smoke --threads 1 --rounds 1)
    flux2=(--geometry flux2-smoke --threads 1 --rounds 1)
    qwenimage=(--geometry qwenimage-smoke --threads 1 --rounds 1)
    zimage=(--geometry zimage-smoke --threads 1 --rounds 1)
    limits=(120 120 240 120 120 120 120)
fi

# phase NAME LIMIT_S SCRIPT ARGS...: the script's last stdout line (its JSON) into $work/NAME.json
phase() {
    local name=$1 limit=$2 script=$3
    shift 3
    [[ " ${run[*]} " == *" $name "* ]] || return 0
    echo "gpu_check: $name (at most ${limit}s)" >&2
    timeout "$limit" "$python" "$here/$script" "$@" --json >"$work/$name.out" 2>"$work/$name.err"
    echo $? >"$work/$name.rc"
}
phase overhead "${limits[0]}" deleaker_overhead.py "${overhead[@]}" --planted-masks
phase reference "${limits[1]}" deleaker_overhead.py "${reference[@]}" --planted-masks
phase memory "${limits[2]}" gpu_memory_settings.py "${memory[@]}"
phase sd3 "${limits[3]}" deleaker_overhead.py "${sd3[@]}" --planted-masks
phase flux2 "${limits[4]}" deleaker_overhead.py "${flux2[@]}" --planted-masks
phase qwenimage "${limits[5]}" deleaker_overhead.py "${qwenimage[@]}" --planted-masks
phase zimage "${limits[6]}" deleaker_overhead.py "${zimage[@]}" --planted-masks

"$python" - "$work" "$mode" "$part" <<'EOF' >"$work/gpu_check.json"
import json, os, sys, pathlib

work, mode, part = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
result = {"benchmark": "gpu_check", "mode": mode, "part": part, "phases": {}, "not_run": []}
for name in ("overhead", "reference", "memory", "sd3", "flux2", "qwenimage", "zimage"):
    if not (work / f"{name}.rc").exists():
        result["not_run"].append(name)
        continue
    rc = int((work / f"{name}.rc").read_text())
    lines = (work / f"{name}.out").read_text().strip().splitlines()
    try:
        data = json.loads(lines[-1]) if rc == 0 and lines else None
    except json.JSONDecodeError:
        data = None
    if data is None:
        tail = (work / f"{name}.err").read_text().strip().splitlines()[-5:]
        data = {"error": "timed out" if rc in (124, 137) else f"exit {rc}", "stderr_tail": tail}
    result["phases"][name] = data
phase = lambda name: result["phases"].get(name, {})  # noqa: E731 - a phase not run is {}
over, ref = phase("overhead"), phase("reference")
summary = {
    "fast_over_vanilla_time": over.get("fast_over_vanilla_time"),
    "fast_over_vanilla_peak_mem": over.get("fast_over_vanilla_peak_mem"),
    "fast_vs_reference_max_abs_diff_rel": ref.get("fast_vs_reference_max_abs_diff_rel"),
    "sd3_fast_over_vanilla_time": phase("sd3").get("fast_over_vanilla_time"),
    "sd3_fast_over_vanilla_peak_mem": phase("sd3").get("fast_over_vanilla_peak_mem"),
    "flux2_fast_over_vanilla_time": phase("flux2").get("fast_over_vanilla_time"),
    "flux2_fast_over_vanilla_peak_mem": phase("flux2").get("fast_over_vanilla_peak_mem"),
    "memory_settings_peak_bytes": {
        f"offload={r['offload']},quantize={r['quantize']}": r.get("peak_bytes", r.get("error"))
        for r in phase("memory").get("settings", [])
    },
}
summary["families"] = {
    name: {
        k: phase(name).get(k)
        for k in ("fast_over_vanilla_time", "fast_over_vanilla_peak_mem",
                  "fast_vs_reference_max_abs_diff_rel")
    }
    for name in ("qwenimage", "zimage")
}
result["summary"] = summary
result["ok"] = all("error" not in p for p in result["phases"].values())
if mode == "gpu":
    # the targets of the phases that ran
    targets = {"overhead": {"fast_over_vanilla_time": 1.15, "fast_over_vanilla_peak_mem": 1.05},
               "sd3": {"sd3_fast_over_vanilla_time": 1.15, "sd3_fast_over_vanilla_peak_mem": 1.05},
               "flux2": {"flux2_fast_over_vanilla_time": 1.15,
                         "flux2_fast_over_vanilla_peak_mem": 1.05}}
    result["targets"] = {k: v for name, t in targets.items() if name in result["phases"]
                         for k, v in t.items()}
    result["meets_targets"] = all(
        summary[k] is not None and summary[k] <= v for k, v in result["targets"].items()
    )
print(json.dumps(result, indent=1))
EOF

if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT"
    cp "$work/gpu_check.json" "$OUT/gpu_check.json"
    echo "gpu_check: wrote $OUT/gpu_check.json" >&2
else
    cat "$work/gpu_check.json"
fi
"$python" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["ok"] else 1)' \
    "$work/gpu_check.json"
