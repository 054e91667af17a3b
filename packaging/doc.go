// Package packaging holds no code: it keeps the files that install iotgw on a host
// (systemd/iotgw.service) next to the tests that check them, so that a broken unit
// fails `go test ./...` instead of a deployment.
package packaging
