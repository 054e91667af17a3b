// Package scripts holds no code: it keeps the release and CI shell scripts next to
// the tests that run them, so that `go test ./...` catches a broken release build.
package scripts
