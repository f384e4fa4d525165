#!/usr/bin/env bash
# Counts, with strace, the fdatasync and fsync calls each log makes in a
# short run of its own (8 writers x 128 B), beside the appends it
# completed: an outside check that every log syncs, including the ones
# that have no counter of their own (raft-wal, tidwall/wal). Needs strace.
# Usage: bench/verify-syncs.sh [duration] [dir]
set -euo pipefail
cd "$(dirname "$0")"
d=${1:-2s}
dir=${2:-${TMPDIR:-/tmp}}
bin=$(mktemp -d)/peerbench
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/peerbench
printf '| log | appends | fdatasync | fsync | appends per sync call |\n|---|---|---|---|---|\n'
for peer in journal ideal pebble etcd raft-wal tidwall naive; do
  trace=$(dirname "$bin")/$peer.strace
  # peerbench reports each case's appends on stderr: "... N appends".
  total=$(strace -f -c -e trace=fdatasync,fsync -o "$trace" \
    "$bin" -peers "$peer" -d "$d" -n 1 -w 8x128 -seqmax 0 -dir "$dir" 2>&1 >/dev/null |
    awk '$NF == "appends" { print $(NF-1) }')
  count() { awk -v s="$1" '$NF == s { print $4 }' "$trace" | head -1; }
  fds=$(count fdatasync); fs=$(count fsync)
  fds=${fds:-0}; fs=${fs:-0}
  per=$(awk -v a="$total" -v n=$((fds + fs)) 'BEGIN { if (n) printf "%.2f", a / n; else print "-" }')
  printf '| %s | %s | %s | %s | %s |\n' "$peer" "$total" "$fds" "$fs" "$per"
done
