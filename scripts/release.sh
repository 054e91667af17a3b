#!/usr/bin/env bash
# release.sh builds the static release binaries of iotgw into dist/:
#   dist/iotgw-linux-amd64   PCs, industrial PCs, x86 gateways
#   dist/iotgw-linux-arm64   Raspberry Pi 3/4/5 with a 64-bit OS
#   dist/iotgw-linux-armv7   Raspberry Pi 2/3/4 with a 32-bit OS (GOARM=7)
#   dist/SHA256SUMS
# Binaries are built with CGO_ENABLED=0 (no libc needed: they run on any Linux),
# -trimpath (no build paths inside), -s -w (no symbol tables), and the version and
# commit stamped into github.com/iotgw/iotgw/buildinfo.
#
# Environment (all optional):
#   VERSION  release version; default: git describe --tags --always --dirty
#   COMMIT   commit id; default: git rev-parse --short=12 HEAD
#   PKG      what to build, anything go build accepts; default ./cmd/iotgw
#   DIST     output folder; default dist (relative to the repository root)
#   TARGETS  space-separated os/arch[/goarm]; default "linux/amd64 linux/arm64 linux/arm/7"
set -euo pipefail

cd "$(dirname "$0")/.."

PKG=${PKG:-./cmd/iotgw}
DIST=${DIST:-dist}
TARGETS=${TARGETS:-linux/amd64 linux/arm64 linux/arm/7}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}

# -X takes the value up to the next space: refuse anything that could split it.
for v in "$VERSION" "$COMMIT"; do
	if [[ ! $v =~ ^[A-Za-z0-9._+-]+$ ]]; then
		echo "release.sh: bad version or commit '$v' (want letters, digits, . _ + -)" >&2
		exit 2
	fi
done

bi=github.com/iotgw/iotgw/buildinfo
ldflags="-s -w -X $bi.Version=$VERSION -X $bi.Commit=$COMMIT"

mkdir -p "$DIST"
rm -f "$DIST"/iotgw-* "$DIST"/SHA256SUMS

names=()
for t in $TARGETS; do
	IFS=/ read -r goos goarch goarm <<<"$t"
	name="iotgw-$goos-$goarch${goarm:+v$goarm}"
	echo "building $name ($VERSION, commit $COMMIT)" >&2
	env CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" ${goarm:+GOARM="$goarm"} \
		go build -trimpath -ldflags "$ldflags" -o "$DIST/$name" "$PKG"
	names+=("$name")
done

(cd "$DIST" && sha256sum "${names[@]}" >SHA256SUMS)

echo "version $VERSION, commit $COMMIT; in $DIST/:"
(cd "$DIST" && for n in "${names[@]}"; do
	size=$(stat -c %s "$n")
	awk -v n="$n" -v s="$size" 'BEGIN { printf "  %-22s %10d bytes  %5.1f MiB\n", n, s, s / 1048576 }'
done)
echo "  SHA256SUMS"
