#!/usr/bin/env bash
# Builds the local control-plane tools into ${STELLA_E2E_CACHE:-<repo>/e2e/.cache}/bin:
#   kube-apiserver, kubectl   (e2e/tools/kube: k8s.io/kubernetes + staging replaces)
#   etcd                      (e2e/tools/etcd: go.etcd.io/etcd/server/v3 at the version that k8s release pins)
#   helm                      (e2e/tools/helm: helm.sh/helm/v3/cmd/helm)
#   rekor-server              (e2e/tools/rekor: the Rekor v2 transparency log, rekor-tiles cmd/rekor-server/posix;
#                              needs Go 1.27: built with GOTOOLCHAIN=$REKOR_GOTOOLCHAIN, fetched from the module proxy)
#
#   e2e/tools/build.sh [--force] [--prune] [kube-apiserver|kubectl|etcd|helm|rekor-server ...]   (default: all five)
#
# --force rebuilds even when up to date; --prune deletes the Go module and build caches afterwards (~4.7 GB), keeping
# only bin/ (~260 MB, stamps included): what a CI cache should hold.
#
# Idempotent: a binary is rebuilt only when it is missing or its stamp (Go version, build flags, sha256 of the
# wrapper's go.mod + go.sum) changed, so a warm run takes well under a second. Builds use -mod=readonly: the
# committed go.mod/go.sum are the pin; regenerate them with e2e/tools/gen-kube-wrapper.sh.
# Cold cost on 2 cores: see e2e/tools/README.md.
set -euo pipefail
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

force=0 prune=0
targets=()
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    --prune) prune=1 ;;
    kube-apiserver | kubectl | etcd | helm | rekor-server) targets+=("$a") ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(etcd helm kube-apiserver kubectl rekor-server)

mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"
go_version="$("$GO" env GOVERSION)"

# The k8s.io/kubernetes version the kube wrapper pins, e.g. v1.37.2 (for version stamping).
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2; exit} $1=="require" && $2=="k8s.io/kubernetes"{print $3; exit}' "$E2E_TOOLS_DIR/kube/go.mod")"
[[ "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "cannot read k8s.io/kubernetes version from kube/go.mod" >&2; exit 1; }
# Stamped so that `kubectl version` / GET /version report the real release (helm checks charts' kubeVersion against
# it). The minor MUST match the source (component-base DefaultKubeBinaryVersion) or the API server refuses to start.
kube_x="k8s.io/component-base/version"
kube_ldflags="-X $kube_x.gitVersion=$k8s_version -X $kube_x.gitMajor=${BASH_REMATCH[1]} -X $kube_x.gitMinor=${BASH_REMATCH[2]} -X $kube_x.gitTreeState=clean"

# Helm: stamped like its upstream Makefile does. Unstamped, `helm version` says v3.22 and `helm template`/`helm lint`
# assume Kubernetes v1.20 (.Capabilities.KubeVersion, deprecation checks); stamp the k8s.io/client-go minor instead.
helm_version="$(awk '$1=="helm.sh/helm/v3"{print $2; exit} $1=="require" && $2=="helm.sh/helm/v3"{print $3; exit}' "$E2E_TOOLS_DIR/helm/go.mod")"
helm_client_go="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$E2E_TOOLS_DIR/helm/go.mod")"
[[ "$helm_client_go" =~ ^v0\.([0-9]+)\. ]] || { echo "cannot read k8s.io/client-go version from helm/go.mod" >&2; exit 1; }
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=${BASH_REMATCH[1]}"
done

# rekor-tiles v2.4.2 requires go 1.27.0: this toolchain (golang.org/toolchain from the module proxy, ~76 MB, into
# $GOMODCACHE) builds it; every other tool keeps GOTOOLCHAIN=local.
REKOR_GOTOOLCHAIN=go1.27.3

# build NAME WRAPPER_DIR PACKAGE EXTRA_LDFLAGS [GOTOOLCHAIN]
build() {
  local name=$1 dir="$E2E_TOOLS_DIR/$2" pkg=$3 ldflags="-s -w${4:+ $4}" toolchain=${5:-local}
  local out="$BIN/$name" stampf="$BIN/.$name.stamp" stamp t0 gover=$go_version
  # A pinned toolchain names its version exactly: no need to run (and maybe download) it to check the stamp.
  [[ $toolchain == local ]] || gover=$toolchain
  stamp="$(
    printf 'name=%s\npkg=%s\ngo=%s\nflags=CGO_ENABLED=%s -mod=readonly -trimpath -ldflags=%s\n' \
      "$name" "$pkg" "$gover" "$CGO_ENABLED" "$ldflags"
    (cd "$dir" && sha256sum go.mod go.sum)
  )"
  if [[ $force -eq 0 && -x "$out" && -f "$stampf" && "$(cat "$stampf")" == "$stamp" ]]; then
    log "$name: up to date ($(basename "$dir")/go.mod unchanged)"
    return
  fi
  log "$name: building $pkg ..."
  t0=$(now_ms)
  (cd "$dir" && GOTOOLCHAIN=$toolchain "$GO" build -mod=readonly -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg")
  mv -f "$out.tmp" "$out"
  printf '%s\n' "$stamp" >"$stampf"
  log "$name: built in $(fmt_ms $(($(now_ms) - t0))) ($(du -h "$out" | cut -f1))"
}

total0=$(now_ms)
for t in "${targets[@]}"; do
  t0=$(now_ms)
  case "$t" in
    kube-apiserver) build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags" ;;
    kubectl) build kubectl kube k8s.io/kubernetes/cmd/kubectl "$kube_ldflags" ;;
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 "" ;;
    helm) build helm helm helm.sh/helm/v3/cmd/helm "$helm_ldflags" ;;
    rekor-server) build rekor-server rekor github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix "" "$REKOR_GOTOOLCHAIN" ;;
  esac
  printf '%-15s %s\n' "$t" "$(fmt_ms $(($(now_ms) - t0)))"
done
printf '%-15s %s\n' "total" "$(fmt_ms $(($(now_ms) - total0)))"
if [[ $prune -eq 1 ]]; then
  rm -rf "$GOCACHE" "$GOMODCACHE"
  log "pruned $GOCACHE and $GOMODCACHE"
fi
echo "binaries in $BIN"
