// Package buildinfo holds the version and commit stamped into the binary at link time:
//
//	go build -ldflags "-X github.com/iotgw/iotgw/buildinfo.Version=v1.2.3 \
//	    -X github.com/iotgw/iotgw/buildinfo.Commit=abc1234" ./cmd/iotgw
//
// They are plain string variables (not constants) because -X can only set those.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version, set with -ldflags -X; "dev" for an unstamped build.
var Version = "dev"

// Commit is the source commit, set with -ldflags -X. When empty, CommitID falls back
// to the VCS revision the go command records in the binary (go build in a git checkout).
var Commit = ""

// readBuildInfo is a variable so that tests can replace it.
var readBuildInfo = debug.ReadBuildInfo

// CommitID returns Commit, or else the vcs.revision recorded by the go command (with
// "-dirty" appended when vcs.modified is true), or else "unknown".
func CommitID() string {
	if Commit != "" {
		return Commit
	}
	bi, ok := readBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		// A short hash is what people paste into git; 12 hex digits stay unique.
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String describes the build in one line, e.g.
// "iotgw v1.2.3 (commit abc1234, go1.26.8 linux/amd64)".
func String() string {
	return fmt.Sprintf("iotgw %s (commit %s, %s %s/%s)",
		Version, CommitID(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
