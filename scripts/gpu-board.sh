#!/usr/bin/env bash
# One command of a GPU board run: install what the GPU machine lacks, take up what an earlier
# command left, run the matrix (or a slice of it) within a time limit, and leave the store,
# the figures, reports and domain networks (no model checkpoints) and a log under $OUT, in
# three files.
#
#   OUT=DIR scripts/gpu-board.sh [--config standard] [--limit SECONDS] [--carry DIR]
#                                [--device cuda] [-- EXTRA ganbench run ARGS, e.g. --only dataset=digits]
#
#   --config   a shipped matrix name or a TOML path (default: standard)
#   --limit    seconds the run may take before it is stopped (default: 480); what finished is
#              kept and the next command resumes from it
#   --carry    a folder holding an earlier command's $OUT files (ganbench.sqlite, artifacts.tar.gz)
#   --device   cuda (default) or cpu (how the script is tested on a CPU machine)
#
# Install: the wheels under .gpu/wheels/ (captum, torch-fidelity: see docs/gpu.md) and this
# checkout, editable and without dependencies, into the python that runs the script ($PYTHON,
# default python3). Skipped when ganbench, captum and torch_fidelity already import.
#
# Checkpoints do not travel (the files that come back from a GPU machine are limited in size),
# so an evaluation can only read a checkpoint trained by the same command: slice the matrix
# into whole cells (--only dataset=..., --only arch=...), each command training and
# evaluating its own. A trained model whose evaluations a time limit cut off is trained again
# by the next command (`ganbench run` retrains a finished train trial whose checkpoint is
# missing while an evaluation of it is still to run).
#
# Exit status: that of `ganbench run` (0: every trial finished or n/a), 124 when the time
# limit stopped it; the files under $OUT are written either way.
set -uo pipefail

config=standard
limit=480
carry=""
device=cuda
python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case "$1" in
    --config) config=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --carry) carry=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "gpu-board: unknown option '$1' (options: --config, --limit, --carry, --device, -- RUN-ARGS)" >&2; exit 2 ;;
    esac
done
if [ -z "${OUT:-}" ]; then
    echo "gpu-board: set OUT to the folder the store, figures and log are left in" >&2
    exit 2
fi
mkdir -p "$OUT"
log="$OUT/gpu-board.log"
: >"$log"
say() { echo "gpu-board: $*" | tee -a "$log"; }

work=${GPU_BOARD_WORK:-runs/gpu-board}
store="$work/ganbench.sqlite"
mkdir -p "$work"

# 1. install what is missing
if ! "$python" -c "import ganbench, captum, torch_fidelity" 2>/dev/null; then
    if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
        "$python" -m pip install -q --no-index --no-deps .gpu/wheels/*.whl >>"$log" 2>&1 ||
            { say "installing .gpu/wheels/*.whl failed (see $log)"; exit 3; }
    fi
    "$python" -m pip install -q --no-build-isolation --no-deps -e . >>"$log" 2>&1 ||
        { say "installing this checkout failed (see $log)"; exit 3; }
fi
"$python" -c "import ganbench, captum, torch_fidelity" 2>>"$log" ||
    { say "ganbench, captum or torch_fidelity does not import: put their wheels in .gpu/wheels (docs/gpu.md)"; exit 3; }

# 2. take up an earlier command's store and figures
if [ -n "$carry" ]; then
    if [ ! -f "$carry/ganbench.sqlite" ]; then
        say "--carry $carry holds no ganbench.sqlite: pass the folder an earlier command's OUT came back to"
        exit 2
    fi
    cp "$carry/ganbench.sqlite" "$store"
    if [ -f "$carry/artifacts.tar.gz" ]; then
        tar -xzf "$carry/artifacts.tar.gz" -C "$work"
    fi
    say "took up $carry"
fi

# 3. the run, stopped at the time limit (SIGINT first: the running trials are recorded as
#    interrupted and rerun next time; what finished stays)
say "ganbench run $config --device $device --store $store $* (limit ${limit} s)"
start=$(date +%s)
timeout --signal=INT --kill-after=30 "$limit" \
    "$python" -m ganbench.cli run "$config" --device "$device" --store "$store" --quiet "$@" \
    >>"$log" 2>&1
status=$?
say "run ended with status $status after $(($(date +%s) - start)) s"
"$python" -m ganbench.cli run "$config" --device "$device" --store "$store" --dry-run "$@" \
    2>>"$log" | tail -n 1 | tee -a "$log"

# 4. leave the store, figures and reports (no checkpoints) and the log under OUT
cp "$store" "$OUT/ganbench.sqlite"
tar -czf "$OUT/artifacts.tar.gz" -C "$work" --exclude=model.safetensors --exclude='*.partial*' artifacts
say "left $(ls "$OUT" | tr '\n' ' ')in $OUT ($(du -sh "$OUT" | cut -f1))"
exit "$status"
