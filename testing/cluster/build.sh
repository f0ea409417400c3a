#!/usr/bin/env bash
# Build the real-control-plane test tier's binaries from Go modules, into a cache outside the repository.
#
#   testing/cluster/build.sh            # build if needed, print the binary directory on the last line
#   testing/cluster/build.sh --print    # only print the binary directory (exit 1 if not built)
#   testing/cluster/build.sh --real-node [--print]   # the same for the real node's binaries (below)
#
# What it builds (versions come from go.mod in this directory; go.sum pins every checksum):
#   kube-apiserver, kube-controller-manager, kube-scheduler  k8s.io/kubernetes/cmd/...   (K8S_VERSION)
#   etcd                                                     go.etcd.io/etcd/server/v3  (the version k8s pins)
#   kwok                                                     sigs.k8s.io/kwok/cmd/kwok  (v0.8.0)
#
# With --real-node, the real node's binaries instead (testing/cluster/realnode.py runs them under Debian's
# containerd and runc):
#   kubelet                       k8s.io/kubernetes/cmd/kubelet       (same module, same ldflags)
#   bridge, host-local, loopback  github.com/containernetworking/plugins (CNI_VERSION; go install)
#   git-sync                      third_party/git-sync (v4.4.0 sources: the module proxy refuses it)
#   pause                         pause/pause.go (the pod sandbox's process)
# into <the entry below>/node-<hash of their inputs>/bin.
#
# Into: ${BODYWORK_CLUSTER_CACHE:-$XDG_CACHE_HOME/bodywork-action/cluster}/<K8S_VERSION>-<go.sum hash>/bin
# A binary that already exists is not rebuilt; when all five exist (and the .complete stamp is there)
# the script does nothing. Nothing built here is ever written into the repository.
#
# Environment: GO (path to go, default: `go` on PATH, else /usr/local/go/bin/go), BODYWORK_CLUSTER_JOBS
# (build parallelism, default 2: the machines are shared), BODYWORK_CLUSTER_CACHE (cache root).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

K8S_VERSION="v1.37.2"
KWOK_VERSION="v0.8.0"
CNI_VERSION="v1.9.1"
GIT_SYNC_VERSION="v4.4.0"

mode="build"
target="control-plane"
for arg in "$@"; do
  case "$arg" in
    --print) mode="print" ;;
    --real-node) target="real-node" ;;
    *) echo "usage: build.sh [--real-node] [--print]" >&2; exit 2 ;;
  esac
done

cache_root="${BODYWORK_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bodywork-action/cluster}"
key="$(cat go.mod go.sum | sha256sum | cut -c1-12)"
dest="$cache_root/${K8S_VERSION}-${key}"
bin="$dest/bin"
components=(etcd kwok kube-apiserver kube-controller-manager kube-scheduler)
if [[ "$target" == "real-node" ]]; then
  node_key="$( (echo "$CNI_VERSION $GIT_SYNC_VERSION"; cat pause/pause.go $(find third_party/git-sync -type f | sort)) \
    | sha256sum | cut -c1-12)"
  dest="$dest/node-$node_key"
  bin="$dest/bin"
  components=(kubelet bridge host-local loopback git-sync pause)
fi

all_present() {
  [[ -f "$dest/.complete" ]] || return 1
  for c in "${components[@]}"; do [[ -x "$bin/$c" ]] || return 1; done
}

if [[ "$mode" == "print" ]]; then
  all_present || { echo "$target binaries not built (expected in $bin)" >&2; exit 1; }
  echo "$bin"
  exit 0
fi

if all_present; then
  echo "[cluster-build] up to date: $bin" >&2
  echo "$bin"
  exit 0
fi

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else echo "[cluster-build] ERROR: no Go toolchain (need Go >= 1.26 on PATH or at /usr/local/go/bin/go)" >&2; exit 3
  fi
fi
go_version="$("$GO" env GOVERSION)"
echo "[cluster-build] using $GO ($go_version), k8s $K8S_VERSION, kwok $KWOK_VERSION" >&2
echo "[cluster-build] target $bin (one-time cold build: ~10-30 min on 2 cores; later runs reuse it)" >&2

mkdir -p "$bin"
# One build at a time per cache entry (two pytest sessions may start together).
exec 9>"$dest/.lock"
if ! flock -n 9; then
  echo "[cluster-build] another build holds $dest/.lock; waiting for it" >&2
  flock 9
fi

export GOTOOLCHAIN=local      # never fetch another toolchain behind our back
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath -p=${BODYWORK_CLUSTER_JOBS:-2}"

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
kwok_ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
etcd_ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-build"

build_one() { # name package ldflags
  local name="$1" pkg="$2" ldflags="$3" start
  if [[ -x "$bin/$name" ]]; then
    echo "[cluster-build] $name: cached" >&2
    return 0
  fi
  start=$SECONDS
  echo "[cluster-build] $name: building $pkg ..." >&2
  # Heartbeat so a long first build visibly makes progress.
  ( while sleep 60; do echo "[cluster-build] $name: still building ($((SECONDS - start))s)" >&2; done ) &
  local hb=$!
  local rc=0
  "$GO" build -ldflags "$ldflags" -o "$bin/.$name.tmp" "$pkg" || rc=$?
  kill "$hb" 2>/dev/null || true
  wait "$hb" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    rm -f "$bin/.$name.tmp"
    echo "[cluster-build] ERROR: go build $pkg failed (exit $rc)" >&2
    return $rc
  fi
  mv "$bin/.$name.tmp" "$bin/$name"
  echo "[cluster-build] $name: done in $((SECONDS - start))s" >&2
}

build_cni() { # go install ...@version: the plugins module has no replace directives
  local start=$SECONDS tmp="$dest/.gobin"
  if [[ -x "$bin/bridge" && -x "$bin/host-local" && -x "$bin/loopback" ]]; then return 0; fi
  echo "[cluster-build] CNI plugins: building $CNI_VERSION ..." >&2
  mkdir -p "$tmp"
  GOBIN="$tmp" GOFLAGS="-trimpath -p=${BODYWORK_CLUSTER_JOBS:-2}" "$GO" install -ldflags "-s -w" \
    "github.com/containernetworking/plugins/plugins/main/bridge@$CNI_VERSION" \
    "github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_VERSION" \
    "github.com/containernetworking/plugins/plugins/main/loopback@$CNI_VERSION"
  mv "$tmp/bridge" "$tmp/host-local" "$tmp/loopback" "$bin/"
  echo "[cluster-build] CNI plugins: done in $((SECONDS - start))s" >&2
}

total=$SECONDS
if [[ "$target" == "real-node" ]]; then
  build_one pause ./pause "-s -w"
  (cd third_party/git-sync && build_one git-sync . "-s -w -X k8s.io/git-sync/pkg/version.VERSION=$GIT_SYNC_VERSION")
  build_cni
  build_one kubelet k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
  echo "k8s=$K8S_VERSION cni=$CNI_VERSION git-sync=$GIT_SYNC_VERSION go=$go_version built=$build_date" > "$dest/.complete"
  echo "[cluster-build] real-node binaries ready in $((SECONDS - total))s: $bin" >&2
  echo "$bin"
  exit 0
fi
build_one etcd go.etcd.io/etcd/server/v3 "$etcd_ldflags"
build_one kwok sigs.k8s.io/kwok/cmd/kwok "$kwok_ldflags"
build_one kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build_one kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build_one kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"

{
  echo "k8s=$K8S_VERSION kwok=$KWOK_VERSION go=$go_version built=$build_date"
} > "$dest/.complete"
echo "[cluster-build] all binaries ready in $((SECONDS - total))s: $bin" >&2
echo "$bin"
