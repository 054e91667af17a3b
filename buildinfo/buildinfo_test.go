package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		commit   string
		settings []debug.BuildSetting
		noInfo   bool
		want     string
	}{
		{name: "stamped", version: "v1.2.3", commit: "abc1234", want: "iotgw v1.2.3 (commit abc1234, "},
		{name: "vcs fallback", version: "dev", settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.modified", Value: "false"},
		}, want: "iotgw dev (commit 0123456789ab, "},
		{name: "vcs dirty", version: "dev", settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"},
			{Key: "vcs.modified", Value: "true"},
		}, want: "iotgw dev (commit abc-dirty, "},
		{name: "no vcs", version: "dev", want: "iotgw dev (commit unknown, "},
		{name: "no build info", version: "dev", noInfo: true, want: "iotgw dev (commit unknown, "},
		{name: "stamp wins over vcs", version: "v2", commit: "c0ffee", settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"},
		}, want: "iotgw v2 (commit c0ffee, "},
	}
	oldV, oldC, oldR := Version, Commit, readBuildInfo
	t.Cleanup(func() { Version, Commit, readBuildInfo = oldV, oldC, oldR })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Version, Commit = tt.version, tt.commit
			readBuildInfo = func() (*debug.BuildInfo, bool) {
				if tt.noInfo {
					return nil, false
				}
				return &debug.BuildInfo{Settings: tt.settings}, true
			}
			want := tt.want + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
			if got := String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
		})
	}
}

// TestLdflags builds a tiny program with the real -X flags documented in the package
// comment and checks that they land, so a rename of the variables breaks a test.
func TestLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/iotgw/iotgw/buildinfo\"\n)\n\nfunc main() { fmt.Print(buildinfo.String()) }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/iotgw/iotgw/buildinfo.Version=v9.8.7 -X github.com/iotgw/iotgw/buildinfo.Commit=feedbeef",
		src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := "iotgw v9.8.7 (commit feedbeef, "; !strings.HasPrefix(string(out), want) {
		t.Errorf("output %q, want prefix %q", out, want)
	}
}
