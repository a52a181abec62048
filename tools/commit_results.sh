#!/usr/bin/env bash
# Commits each result.json a long study writes, as it lands, from the study's pinned worktree into
# this checkout (with the run's kept per-epoch predictions, which the ignore rules admit), so that a
# session ending mid-study loses only the runs still training.
#
#   tools/commit_results.sh WORKTREE RUNS_DIR... [--every SECONDS | --once]
#
# Only result.json files newer than WORKTREE/.sync-start are taken (touch it when pinning the
# worktree); a run already committed with the same bytes is skipped. Commits name their paths, so
# whatever else is staged or changed here stays out of them.
set -euo pipefail
every=120
once=false
worktree=${1:?usage: tools/commit_results.sh WORKTREE RUNS_DIR... [--every SECONDS | --once]}
shift
dirs=()
while [ $# -gt 0 ]; do
    case $1 in
        --every) every=${2:?--every needs seconds}; shift 2 ;;
        --once) once=true; shift ;;
        *) dirs+=("$1"); shift ;;
    esac
done
[ ${#dirs[@]} -gt 0 ] || { echo "commit_results: name at least one runs folder" >&2; exit 2; }
[ -e "$worktree/.sync-start" ] || { echo "commit_results: $worktree/.sync-start is missing (touch it when pinning the worktree)" >&2; exit 2; }
here=$(git rev-parse --show-toplevel)

commit_run() {  # $1: a run folder relative to the worktree
    local run=$1 paths=()
    mkdir -p "$here/$run"
    cp "$worktree/$run/result.json" "$here/$run/result.json"
    paths+=("$run/result.json")
    if [ -d "$worktree/$run/epoch_predictions" ]; then
        rm -rf "$here/$run/epoch_predictions"
        cp -r "$worktree/$run/epoch_predictions" "$here/$run/epoch_predictions"
        paths+=("$run/epoch_predictions")
    fi
    (cd "$here" && git add -- "${paths[@]}" && git commit --quiet -m "Study results: 1 result.json (${run#*/})" --only -- "${paths[@]}")
}

while true; do
    for dir in "${dirs[@]}"; do
        [ -d "$worktree/$dir" ] || continue
        (cd "$worktree" && find "$dir" -name result.json -newer .sync-start) | sort | while read -r result; do
            run=$(dirname "$result")
            if cmp -s "$worktree/$result" "$here/$result" && (cd "$here" && git ls-files --error-unmatch "$result" >/dev/null 2>&1); then
                continue
            fi
            # git may be busy with another commit here: try again next round.
            if commit_run "$run"; then echo "$(date -u +%FT%TZ) committed $run"; else echo "$(date -u +%FT%TZ) retry later: $run"; fi
        done
    done
    if $once; then break; fi
    sleep "$every"
done
