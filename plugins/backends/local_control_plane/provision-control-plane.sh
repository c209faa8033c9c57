#!/usr/bin/env bash
# Provision a real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager +
# kube-scheduler) and the kwok controller on a Debian machine that reaches only the package
# registries and the Go module proxy.
#
# usage: provision-control-plane.sh KUBE_VERSION [KWOK_VERSION]
#
# Two recipes, chosen by the version's family (shared/KUBE-BINARIES.md explains both):
#   v1.20.2  - Debian bookworm's `kubernetes` source package (the only complete Kubernetes source in
#              Debian), built with Go 1.15 from bullseye in GOPATH mode; etcd from Debian.
#   v1.29+   - the `k8s.io/kubernetes` module and its published `k8s.io/*` staging modules through
#              the module proxy, built with the machine's Go (/usr/local/go or PATH); etcd built
#              from the very `go.etcd.io/etcd/server/v3` version that release's go.mod pins.
# KWOK_VERSION, when given, also installs `sigs.k8s.io/kwok/cmd/kwok` with the machine's Go (any
# recipe: kwok only talks to the API server).
#
# Idempotent and cached: binaries land in $KPERF_BIN_DIR (default ~/.cache/kperf/kube-VERSION/bin),
# kwok in ~/.cache/kperf/kwok-VERSION/bin; Go's module and build caches stay in their default
# places, so a rebuild after a recipe bump is cheap. A second run finishes in about a second.
# Prints the binary directory on its last line of stdout.
set -euo pipefail

KUBE_VERSION=${1:?usage: provision-control-plane.sh KUBE_VERSION [KWOK_VERSION]}
KWOK_VERSION=${2:-}
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/kperf
BIN_DIR=${KPERF_BIN_DIR:-$CACHE_ROOT/kube-$KUBE_VERSION/bin}
BUILD_DIR=${KPERF_BUILD_DIR:-$CACHE_ROOT/kube-$KUBE_VERSION/build}
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

log() { printf '[provision] %s\n' "$*" >&2; }

case $KUBE_VERSION in
  v1.20.2) FAMILY=debian; RECIPE=4 ;;
  v1.29.* | v1.[3-9][0-9].*) FAMILY=modules; RECIPE=modules-1 ;;
  *) log "no recipe for Kubernetes $KUBE_VERSION (v1.20.2 or v1.29.0 and newer)"; exit 2 ;;
esac
# The recipe stamp: cached binaries from an older recipe are rebuilt.

# etcd: Debian's for the Debian recipe (on PATH), built next to the others for the module recipe.
etcd_path() {
  if [ "$FAMILY" = debian ]; then command -v etcd 2>/dev/null; else echo "$BIN_DIR/etcd"; fi
}

have_all() {
  local etcd
  etcd=$(etcd_path) && [ -x "$etcd" ] || return 1
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
  [ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" = "$RECIPE" ]
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# -- the machine's Go (module recipe and kwok) ------------------------------------------------

modern_go() {
  local go
  go=$(command -v go 2>/dev/null || true)
  [ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
  [ -n "$go" ] || { log "no Go toolchain (looked on PATH and in /usr/local/go)"; return 1; }
  echo "$go"
}

# -- recipe: Debian source, v1.20.2 ------------------------------------------------------------

DEBIAN_GO_ROOT=/usr/lib/go-1.15

apt_sources() {
  # deb-src for bookworm (the kubernetes source package) and a low-priority bullseye entry for
  # golang-1.15-go only; the pin keeps everything else coming from bookworm.
  local f=/etc/apt/sources.list.d/kperf-provision.sources
  if [ ! -f "$f" ]; then
    log "adding apt sources ($f)"
    $SUDO tee "$f" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO tee /etc/apt/preferences.d/kperf-bullseye >/dev/null <<'PIN'
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PIN
  fi
}

debian_packages() {
  local missing=()
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  [ -x "$DEBIAN_GO_ROOT/bin/go" ] || missing+=(golang-1.15-go)
  command -v dpkg-source >/dev/null 2>&1 || missing+=(dpkg-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_sources
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    # The etcd-server package enables a systemd unit; nothing starts it on these machines.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

debian_source() {
  local src
  src=$(find "$BUILD_DIR/src" -maxdepth 1 -type d -name 'kubernetes-*' 2>/dev/null | head -n 1)
  if [ -z "$src" ]; then
    apt_sources
    $SUDO apt-get update -qq
    mkdir -p "$BUILD_DIR/src"
    log "apt-get source kubernetes (bookworm)"
    (cd "$BUILD_DIR/src" && apt-get source -qq kubernetes/bookworm >&2)
    src=$(find "$BUILD_DIR/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
  fi
  echo "$src"
}

build_debian() {
  debian_packages
  local src
  src=$(debian_source)
  # GOENV=off: a machine-wide `go env -w` file written for a current Go (GOFLAGS=-buildvcs=false
  # on these machines) is read by Go 1.15 too, which rejects the flag; an empty GOFLAGS does not
  # override the file.
  export GOENV=off GOPATH=$BUILD_DIR/gopath GO111MODULE=off GOFLAGS= GOCACHE=$BUILD_DIR/gocache
  export PATH=$DEBIAN_GO_ROOT/bin:$PATH
  log "toolchain $(go version); Kubernetes $KUBE_VERSION from $(basename "$src"); etcd $(etcd --version | head -n 1)"
  mkdir -p "$GOPATH/src/k8s.io"
  ln -sfn "$src" "$GOPATH/src/k8s.io/kubernetes"
  cd "$GOPATH/src/k8s.io/kubernetes"

  if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
    log "generating OpenAPI definitions"
    go build -o "$BUILD_DIR/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    local pkgs
    # -R, not -r: vendor/k8s.io/{api,apiextensions-apiserver,...} are symlinks into staging/.
    pkgs=$(grep -Rl --include='*.go' '+k8s:openapi-gen=' pkg cmd plugin vendor/k8s.io \
             | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
             | xargs -n1 dirname | sort -u | sed 's#^#k8s.io/kubernetes/#' | paste -sd, -)
    log "openapi-gen over $(tr ',' '\n' <<<"$pkgs" | wc -l) packages"
    "$BUILD_DIR/openapi-gen" -i "$pkgs" -p k8s.io/kubernetes/pkg/generated/openapi \
      -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -o "$GOPATH/src" \
      >"$BUILD_DIR/openapi-gen.log"  # hundreds of harmless "API rule violation" lines
  fi
  build_binaries ./cmd k8s.io/kubernetes/vendor/k8s.io
}

# -- recipe: Go modules through the proxy, v1.29+ -----------------------------------------------

build_modules() {
  local go
  go=$(modern_go) || exit 3
  export PATH=$(dirname "$go"):$PATH
  local staging=v0.${KUBE_VERSION#v1.}  # k8s.io/api etc. are published as v0.MINOR.PATCH
  mkdir -p "$BUILD_DIR"
  cd "$BUILD_DIR"
  # The kubernetes module replaces its k8s.io/* staging modules with local paths, which a
  # dependency's replaces cannot do: the consumer module pins each to the published version.
  local kube_mod
  kube_mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$kube_mod" ] || { log "k8s.io/kubernetes@$KUBE_VERSION: go.mod not found through the module proxy"; exit 3; }
  local need_go have_go
  need_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kube_mod")
  have_go=$(go env GOVERSION | sed 's/^go//')
  if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -n 1)" != "$need_go" ]; then
    log "Kubernetes $KUBE_VERSION needs Go >= $need_go; $go is $have_go"
    exit 3
  fi
  local modules
  modules=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$kube_mod")
  {
    echo "module kperf.local/kube-build"
    echo
    echo "go $need_go"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    for m in $modules; do echo "require $m $staging"; done
    for m in $modules; do echo "replace $m => $m $staging"; done
  } >go.mod
  # The release's own go.mod decides every other version, etcd's server included (MVS picks its
  # pins: nothing in this module asks for more), so the etcd built is the one it was tested with.
  local etcd_version
  etcd_version=$(sed -n 's#^\s*go.etcd.io/etcd/server/v3 \(v[^ ]*\).*#\1#p' "$kube_mod")
  log "toolchain $(go version); Kubernetes $KUBE_VERSION (k8s.io/* staging modules $staging); etcd $etcd_version; module proxy $(go env GOPROXY)"
  log "downloading modules"
  GOFLAGS=-mod=mod go get "k8s.io/kubernetes@$KUBE_VERSION" "go.etcd.io/etcd/server/v3@$etcd_version" >&2
  mkdir -p "$BIN_DIR"
  if [ ! -x "$BIN_DIR/etcd" ] || [ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" != "$RECIPE" ]; then
    log "go build etcd"
    GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.partial" go.etcd.io/etcd/server/v3
    mv "$BIN_DIR/etcd.partial" "$BIN_DIR/etcd"
  fi
  GOFLAGS=-mod=mod build_binaries k8s.io/kubernetes/cmd k8s.io
}

# -- shared: build and version-stamp the three Kubernetes binaries -------------------------------

build_binaries() {
  local cmd_prefix=$1 k8s_io=$2
  # Stamp both version packages, as upstream's hack/lib/version.sh does: --version reads
  # component-base's, the /version endpoint client-go's.
  local minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  local ldflags="-s -w" pkg
  for pkg in component-base/version client-go/pkg/version; do
    pkg=$k8s_io/$pkg
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$BIN_DIR"
  if [ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" != "$RECIPE" ]; then
    rm -f "${BINARIES[@]/#/$BIN_DIR/}"
  fi
  local b start
  for b in "${BINARIES[@]}"; do
    if [ ! -x "$BIN_DIR/$b" ]; then
      log "go build $b"
      start=$SECONDS
      go build -ldflags "$ldflags" -o "$BIN_DIR/$b.partial" "$cmd_prefix/$b"
      mv "$BIN_DIR/$b.partial" "$BIN_DIR/$b"
      log "built $b in $((SECONDS - start)) s"
    fi
  done
  echo "$RECIPE" > "$BIN_DIR/.recipe"
}

# -- kwok ------------------------------------------------------------------------------------------

install_kwok() {
  local dir=$CACHE_ROOT/kwok-$KWOK_VERSION/bin go
  if [ -x "$dir/kwok" ]; then
    log "kwok $KWOK_VERSION already present in $dir"
    return
  fi
  if ! go=$(modern_go); then
    log "kwok $KWOK_VERSION not installed: no Go toolchain (the kwok node-pool backend needs it on the local plane)"
    return
  fi
  log "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION ($("$go" version))"
  if ! GOBIN=$dir "$go" install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2; then
    log "kwok $KWOK_VERSION not installed (see above); the kwok node-pool backend needs it on the local plane"
  fi
}

# -- main ------------------------------------------------------------------------------------------

if have_all; then
  log "Kubernetes $KUBE_VERSION binaries already present in $BIN_DIR"
else
  start=$SECONDS
  if [ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" != "$RECIPE" ]; then
    rm -rf "$BUILD_DIR"  # generated files of an older recipe must not be reused
  fi
  ( "build_$FAMILY" )
  have_all || { log "provisioning finished but binaries are missing"; exit 1; }
  # The build tree (1.5 GB for the Debian recipe) is not needed any more; Go's own module and
  # build caches stay where they are.
  rm -rf "$BUILD_DIR"
  log "Kubernetes $KUBE_VERSION binaries ready in $BIN_DIR ($((SECONDS - start)) s)"
fi
[ -z "$KWOK_VERSION" ] || install_kwok
echo "$BIN_DIR"
