# syntax=docker/dockerfile:1
# iotgw container image: a static binary on distroless, running as nonroot.
#   docker build -t iotgw .
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t iotgw .
# Run it: see docs/install.md ("Container").

# Build on the builder's own platform and cross-compile: no emulation needed.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION=dev
ARG COMMIT=
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOARM=${TARGETVARIANT#v} \
    go build -trimpath \
      -ldflags "-s -w -X github.com/iotgw/iotgw/buildinfo.Version=$VERSION -X github.com/iotgw/iotgw/buildinfo.Commit=$COMMIT" \
      -o /out/iotgw ./cmd/iotgw \
 && mkdir -p /out/etc/iotgw /out/var/lib/iotgw

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/iotgw /iotgw
# The data folder must exist, owned by nonroot (65532), so that a named volume
# mounted there starts out writable.
COPY --from=build --chown=65532:65532 /out/var/lib/iotgw /var/lib/iotgw
COPY --from=build /out/etc/iotgw /etc/iotgw
USER nonroot
WORKDIR /var/lib/iotgw
VOLUME ["/etc/iotgw", "/var/lib/iotgw"]
ENTRYPOINT ["/iotgw"]
CMD ["run", "--config", "/etc/iotgw/tb_gateway.json"]
