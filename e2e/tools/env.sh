# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Common environment for e2e/tools/*.sh (sourced, not executed).
# Everything Go writes (module cache, build cache, binaries) lives in the git-ignored cache folder.
E2E_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$E2E_TOOLS_DIR/../.." && pwd)"
CACHE="${STELLA_E2E_CACHE:-$REPO/e2e/.cache}"
BIN="$CACHE/bin"

# The Go toolchain: $GO, else `go` on PATH, else /usr/local/go/bin/go.
if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi

export GOMODCACHE="$CACHE/gomod"
export GOCACHE="$CACHE/gobuild"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
# -modcacherw: module cache files stay writable, so `rm -rf e2e/.cache` works without `go clean -modcache`.
export GOFLAGS="-modcacherw -buildvcs=false"
# The wrapper modules live inside another project; never let a go.work above them interfere.
export GOWORK=off

now_ms() { date +%s%3N; }
fmt_ms() { local ms=$1; printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)); }
log() { printf '[e2e-tools] %s\n' "$*" >&2; }
