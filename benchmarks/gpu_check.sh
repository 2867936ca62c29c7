#!/usr/bin/env bash
# GPU check of the generation pipelines (benchmarks/gpu_check.py): images/s per pipeline, precision and compile
# setting, peak CUDA memory, bf16-vs-fp32 sanity; a Markdown table on stdout. Results: benchmarks/generation.md.
#
#   bash benchmarks/gpu_check.sh [--json PATH] [gpu_check.py flags]   # CUDA; < 8 min on one H100
#   bash benchmarks/gpu_check.sh --cpu-smoke [--json PATH]             # CPU smoke test (seconds)
#
# Sets up nothing and fetches nothing: it runs the python of $PYTHON, else .venv/bin/python, else python, with the
# repository on PYTHONPATH. Hard wall-clock limit $GPU_CHECK_LIMIT_S (default 465 s = 7 min 45 s); the python
# script stops starting cases $GPU_CHECK_MARGIN_S (default 45 s) before it. With $OUT set and no --json, the JSON
# goes to $OUT/gpu_check.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
  py=.venv/bin/python
else
  py=python
fi
limit="${GPU_CHECK_LIMIT_S:-465}"
margin="${GPU_CHECK_MARGIN_S:-45}"
args=("$@")
if [[ -n "${OUT:-}" && " $* " != *" --json "* ]]; then
  args+=(--json "$OUT/gpu_check.json")
fi
start=$(date +%s)
set +e
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" timeout --kill-after=10 "$limit" \
  "$py" benchmarks/gpu_check.py --budget-s "$((limit - margin))" --started-at "$start" "${args[@]}"
rc=$?
set -e
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
  echo "gpu_check: stopped at the hard limit of ${limit} s; the rows printed above (and the JSON) are what finished" >&2
fi
echo "gpu_check.sh: wall clock $(( $(date +%s) - start )) s, exit code $rc"
exit $rc
