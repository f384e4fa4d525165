#!/usr/bin/env bash
# Power cuts on real file systems (ext4 and xfs on a loop device over a FUSE
# disk with a volatile write cache); see README.md. Needs root, /dev/fuse and
# loop devices; tests that cannot run here skip and say why.
#
#   JOURNAL_POWERCUT_ROUNDS=N  power cuts per file system (default 25)
#   JOURNAL_SEED=S             replay a run's random choices
#   extra arguments go to go test (e.g. -run 'TestPowerCut$/xfs')
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

# mkfs.xfs (xfsprogs) is not on a fresh machine; mkfs.ext4 (e2fsprogs)
# usually is. Install what is missing when we can; otherwise that file
# system's tests skip.
missing=()
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
command -v mkfs.xfs >/dev/null 2>&1 || missing+=(xfsprogs)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") ||
      echo "warning: could not install ${missing[*]}; the tests that need them skip" >&2
  else
    echo "warning: ${missing[*]} missing and not root: the tests that need them skip" >&2
  fi
fi

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
go vet ./...
go test -count=1 -v -timeout "${JOURNAL_POWERCUT_TIMEOUT:-30m}" -run PowerCut ./... "$@"
