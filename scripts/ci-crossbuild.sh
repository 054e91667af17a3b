#!/usr/bin/env bash
# ci-crossbuild.sh compiles every package for the release targets without keeping
# the output, so that CI catches code that only builds on the developer's machine
# (a syscall constant missing on arm, cgo creeping in). PKGS defaults to ./...;
# TARGETS is the same list as in release.sh.
set -euo pipefail

cd "$(dirname "$0")/.."

PKGS=${PKGS:-./...}
TARGETS=${TARGETS:-linux/amd64 linux/arm64 linux/arm/7}

for t in $TARGETS; do
	IFS=/ read -r goos goarch goarm <<<"$t"
	echo "cross-building $t" >&2
	# shellcheck disable=SC2086 # PKGS may list several patterns
	env CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" ${goarm:+GOARM="$goarm"} \
		go build -trimpath -o /dev/null $PKGS
done
echo "cross-build ok: $TARGETS"
