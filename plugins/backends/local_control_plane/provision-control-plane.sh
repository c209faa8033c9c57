#!/usr/bin/env bash
# Provision a real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager +
# kube-scheduler, v1.20.2) on a Debian bookworm machine with no access beyond the package registries.
#
# Why build from source: no registry ships kube-apiserver; Debian bookworm's `kubernetes` source
# package is the only complete Kubernetes source reachable here. The recipe (Go 1.15 from bullseye,
# GOPATH mode, openapi-gen first) is explained in shared/KUBE-BINARIES.md.
#
# Idempotent and cached: binaries land in $KPERF_BIN_DIR (default ~/.cache/kperf/kube-v1.20.2/bin);
# a second run with everything present finishes in about a second.
# Prints the binary directory on its last line of stdout.
set -euo pipefail

KUBE_VERSION=v1.20.2
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/kperf
BIN_DIR=${KPERF_BIN_DIR:-$CACHE_ROOT/kube-$KUBE_VERSION/bin}
BUILD_DIR=${KPERF_BUILD_DIR:-$CACHE_ROOT/kube-$KUBE_VERSION/build}
GO_ROOT=/usr/lib/go-1.15
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
# Bump when the build recipe changes: cached binaries from an older recipe are rebuilt.
RECIPE=4

log() { printf '[provision] %s\n' "$*" >&2; }

have_all() {
  command -v etcd >/dev/null 2>&1 || return 1
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
  [ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" = "$RECIPE" ]
}

if have_all; then
  log "control-plane binaries already present in $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

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

install_packages() {
  local missing=()
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  [ -x "$GO_ROOT/bin/go" ] || missing+=(golang-1.15-go)
  command -v dpkg-source >/dev/null 2>&1 || missing+=(dpkg-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_sources
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    # The etcd-server package enables a systemd unit; nothing starts it on these machines.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

fetch_source() {
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

build() {
  local src=$1
  # GOENV=off: the machine's user go env (e.g. GOFLAGS=-buildvcs=false for a current Go) would
  # otherwise reach Go 1.15, which rejects flags it does not know; an empty GOFLAGS does not override it.
  export GOPATH=$BUILD_DIR/gopath GO111MODULE=off GOFLAGS= GOENV=off GOCACHE=$BUILD_DIR/gocache
  export PATH=$GO_ROOT/bin:$PATH
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

  # Stamp both version packages, as upstream's hack/lib/version.sh does: --version reads
  # component-base's, the /version endpoint client-go's.
  local ldflags="-s -w" pkg
  for pkg in component-base/version client-go/pkg/version; do
    pkg=k8s.io/kubernetes/vendor/k8s.io/$pkg
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$BIN_DIR"
  if [ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" != "$RECIPE" ]; then
    rm -f "${BINARIES[@]/#/$BIN_DIR/}"
  fi
  for b in "${BINARIES[@]}"; do
    if [ ! -x "$BIN_DIR/$b" ]; then
      log "go build $b (the apiserver takes about 2 minutes on 2 cores)"
      go build -ldflags "$ldflags" -o "$BIN_DIR/$b.partial" "./cmd/$b"
      mv "$BIN_DIR/$b.partial" "$BIN_DIR/$b"
    fi
  done
  echo "$RECIPE" > "$BIN_DIR/.recipe"
}

install_packages
if [ "$(cat "$BIN_DIR/.recipe" 2>/dev/null)" != "$RECIPE" ]; then
  rm -rf "$BUILD_DIR"  # generated files of an older recipe must not be reused
fi
SRC=$(fetch_source)
build "$SRC"
have_all || { log "provisioning finished but binaries are missing"; exit 1; }
# The Go build tree is 1.5 GB and only the three binaries are needed from here on.
rm -rf "$BUILD_DIR"
log "control-plane binaries ready in $BIN_DIR"
echo "$BIN_DIR"
