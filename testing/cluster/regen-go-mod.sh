#!/usr/bin/env bash
# Regenerate testing/cluster/go.mod + go.sum for another Kubernetes release (this is how they were made):
#
#   testing/cluster/regen-go-mod.sh v1.37.2 v0.8.0
#
# 1. Start from an empty module with the godebug line of k8s.io/kubernetes's own go.mod.
# 2. Add one `replace k8s.io/X => k8s.io/X v0.N.P` per `k8s.io/X => ./staging/src/k8s.io/X` line in
#    that release's go.mod (served by the Go module proxy: no GitHub needed). k8s requires its staging
#    modules at the non-existent v0.0.0, and replaces only count in the main module.
# 3. `go get -tool` the three k8s commands, the etcd server at the version k8s pins, and kwok.
# Afterwards update K8S_VERSION in build.sh and the /version assertion in tests/controlplane.
# Never `go get -u`: newer sigs.k8s.io/structured-merge-diff and kube-openapi need Go 1.27.
set -euo pipefail
k8s="${1:?usage: regen-go-mod.sh vK8S vKWOK}"
kwok="${2:-v0.8.0}"
cd "$(dirname "${BASH_SOURCE[0]}")"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

upstream="$("$GO" mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
go_line="$(grep -m1 '^go ' "$upstream")"
godebug="$(grep -m1 '^godebug ' "$upstream" || true)"
etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$upstream")"
staging_version="v0.${k8s#v1.}"

cat > go.mod <<EOF
// Tools module for the real-control-plane test tier. Only go.mod/go.sum are committed: build.sh
// builds the binaries into a cache outside the repository. Regenerate with regen-go-mod.sh.
module bodywork-action/testing/cluster

$go_line

$godebug
EOF
rm -f go.sum
grep -E '=> \./staging/' "$upstream" | awk '{print $1}' | while read -r mod; do
  "$GO" mod edit "-replace=$mod=$mod@$staging_version"
done
"$GO" get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$k8s" "k8s.io/kubernetes/cmd/kube-controller-manager@$k8s" \
  "k8s.io/kubernetes/cmd/kube-scheduler@$k8s"
"$GO" get -tool "go.etcd.io/etcd/server/v3@$etcd" "sigs.k8s.io/kwok/cmd/kwok@$kwok"
echo "regenerated for k8s $k8s (staging $staging_version), etcd $etcd, kwok $kwok" >&2
