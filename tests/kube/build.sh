#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd used by the Kubernetes tests, and gathers the
# real Istio and Gateway API CRDs, from Go modules only. The result is cached per machine,
# keyed by the content of this folder, so a machine builds once (~5 min on 2 cores).
# Prints the cache directory: bin/{kube-apiserver,etcd}, crds/*.yaml.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

K8S_VERSION=v1.37.2
ISTIO_API_VERSION=v1.32.0
GATEWAY_API_VERSION=v1.6.3

key=$(cat "$here/build.sh" "$here"/apiserver/go.* "$here"/apiserver/*.go \
	"$here"/etcd/go.* "$here"/etcd/*.go | sha256sum | cut -c1-16)
cache_root="${XDS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xds-ambient/kube}"
out="$cache_root/$key"
if [ -x "$out/bin/kube-apiserver" ] && [ -x "$out/bin/etcd" ] && [ -d "$out/crds" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
# Another build may have finished while we waited for the lock.
if [ -x "$out/bin/kube-apiserver" ] && [ -x "$out/bin/etcd" ] && [ -d "$out/crds" ]; then
	echo "$out"
	exit 0
fi

stage=$(mktemp -d "$cache_root/.build-XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/crds"
export GOFLAGS="-buildvcs=false -mod=readonly" CGO_ENABLED=0

echo "building etcd and kube-apiserver $K8S_VERSION into $out (once per machine)" >&2
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean"
done
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$stage/bin/etcd" .)
(cd "$here/apiserver" && go build -trimpath -ldflags "$ldflags" -o "$stage/bin/kube-apiserver" .)

# Outside any module (a go.mod in the caller's directory must not matter).
moddir() { (cd "$stage" && go mod download -json "$1") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
istio=$(moddir "istio.io/api@$ISTIO_API_VERSION")
gwapi=$(moddir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")
cp "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$stage/crds/istio.yaml"
for f in "$gwapi"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
	cp "$f" "$stage/crds/gateway-api-$(basename "$f")"
done
chmod -R u+w "$stage"

rm -rf "$out"
mv "$stage" "$out"
trap - EXIT
echo "$out"
