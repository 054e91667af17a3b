package scripts

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testMain is a stand-in for ./cmd/iotgw: a main that prints buildinfo.String, so
// the test can check the stamp without depending on the real command being built.
const testMain = `package main

import (
	"fmt"

	"github.com/iotgw/iotgw/buildinfo"
)

func main() { fmt.Println(buildinfo.String()) }
`

func writeMain(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(p, []byte(testMain), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func script(t *testing.T, name string, env ...string) (string, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-compiles three targets")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", name)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestRelease(t *testing.T) {
	dist := filepath.Join(t.TempDir(), "dist")
	out, err := script(t, "release.sh", "PKG="+writeMain(t), "DIST="+dist, "VERSION=v1.2.3-rc.1", "COMMIT=0123abcd")
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	t.Logf("release.sh output:\n%s", out)
	targets := []struct {
		name    string
		machine elf.Machine
	}{
		{"iotgw-linux-amd64", elf.EM_X86_64},
		{"iotgw-linux-arm64", elf.EM_AARCH64},
		{"iotgw-linux-armv7", elf.EM_ARM},
	}
	sums := readSums(t, filepath.Join(dist, "SHA256SUMS"))
	if len(sums) != len(targets) {
		t.Errorf("SHA256SUMS has %d lines, want %d", len(sums), len(targets))
	}
	for _, tg := range targets {
		p := filepath.Join(dist, tg.name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := sums[tg.name]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: SHA256SUMS says %q, file is %x", tg.name, got, sum)
		}
		if !strings.Contains(out, tg.name) {
			t.Errorf("size of %s not printed", tg.name)
		}
		f, err := elf.Open(p)
		if err != nil {
			t.Fatalf("%s: %v", tg.name, err)
		}
		if f.Machine != tg.machine {
			t.Errorf("%s: machine %v, want %v", tg.name, f.Machine, tg.machine)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s: has a dynamic loader (PT_INTERP): not static", tg.name)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s: has a symbol table: not built with -s", tg.name)
		}
		if tg.machine == elf.EM_ARM {
			// GOARM=7 is recorded in the build info as a setting.
			if !strings.Contains(string(b), "GOARM=7") {
				t.Errorf("%s: no GOARM=7 in build info", tg.name)
			}
		}
		if bytesContain(b, "/work/") || bytesContain(b, os.Getenv("HOME")+"/go/pkg/mod") {
			t.Errorf("%s: contains build paths: not built with -trimpath", tg.name)
		}
		f.Close()
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		got, err := exec.Command(filepath.Join(dist, "iotgw-linux-amd64")).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := "iotgw v1.2.3-rc.1 (commit 0123abcd, " + runtime.Version() + " linux/amd64)\n"
		if string(got) != want {
			t.Errorf("stamped binary prints %q, want %q", got, want)
		}
	}
}

func bytesContain(b []byte, s string) bool { return s != "" && strings.Contains(string(b), s) }

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sha256sum format: 64 hex digits, two spaces, file name.
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("bad SHA256SUMS line %q", sc.Text())
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

func TestReleaseRefusesBadVersion(t *testing.T) {
	dist := filepath.Join(t.TempDir(), "dist")
	out, err := script(t, "release.sh", "PKG="+writeMain(t), "DIST="+dist, "VERSION=v1 -X main.evil=1", "TARGETS=linux/amd64")
	if err == nil || !strings.Contains(out, "bad version or commit") {
		t.Fatalf("release.sh accepted a version with spaces: %v\n%s", err, out)
	}
	if _, err := os.Stat(dist); !os.IsNotExist(err) {
		t.Errorf("dist created despite the error: %v", err)
	}
}

func TestCrossbuild(t *testing.T) {
	out, err := script(t, "ci-crossbuild.sh", "PKGS="+writeMain(t))
	if err != nil {
		t.Fatalf("ci-crossbuild.sh: %v\n%s", err, out)
	}
	if !strings.Contains(out, "cross-build ok: linux/amd64 linux/arm64 linux/arm/7") {
		t.Errorf("output:\n%s", out)
	}
	// A package that does not build for arm must fail the script.
	bad := filepath.Join(t.TempDir(), "bad.go")
	src := "package main\n\nimport \"syscall\"\n\nvar _ = syscall.SYS_ARCH_PRCTL // amd64 only\n\nfunc main() {}\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := script(t, "ci-crossbuild.sh", "PKGS="+bad); err == nil {
		t.Errorf("ci-crossbuild.sh passed an amd64-only program:\n%s", out)
	}
}
