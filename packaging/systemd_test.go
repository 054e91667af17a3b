package packaging

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const unitPath = "systemd/iotgw.service"

// execStart is the command line the unit ships with; tests swap the binary only.
const execStart = "ExecStart=/usr/local/bin/iotgw run --config /etc/iotgw/tb_gateway.json"

// testableUnit writes the unit to a temporary folder with ExecStart pointing at an
// existing binary (/bin/true), because systemd-analyze verify refuses a unit whose
// command does not exist and iotgw is not installed on the test machine.
func testableUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\n"+execStart+"\n")) {
		t.Fatalf("%s: no line %q", unitPath, execStart)
	}
	b = bytes.Replace(b, []byte("ExecStart=/usr/local/bin/iotgw "), []byte("ExecStart=/bin/true "), 1)
	p := filepath.Join(t.TempDir(), "iotgw.service")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit file is not verified (apt-get install systemd)")
	}
	if _, err := os.Stat("/bin/true"); err != nil {
		t.Skip("/bin/true is missing: cannot stand in for the iotgw binary")
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// TestUnitVerifies runs systemd-analyze verify, which parses every directive the
// way systemd will. It prints warnings (unknown keys, bad values) with exit status 0,
// so any output at all is a failure.
func TestUnitVerifies(t *testing.T) {
	sa := systemdAnalyze(t)
	out, err := run(t, sa, "verify", testableUnit(t))
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
}

// TestVerifyCatchesMistakes makes sure the verify test would fail on a typo; if
// systemd-analyze ever stopped reporting them, TestUnitVerifies would prove nothing.
func TestVerifyCatchesMistakes(t *testing.T) {
	sa := systemdAnalyze(t)
	for _, bad := range []string{"ProtectSytem=strict", "Restart=sometimes", "WatchdogSec=thirty"} {
		p := testableUnit(t)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("[Service]\n"), []byte("[Service]\n"+bad+"\n"), 1)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, sa, "verify", p)
		if err == nil && strings.TrimSpace(out) == "" {
			t.Errorf("systemd-analyze verify accepted %q silently", bad)
		}
	}
}

// TestUnitExposure keeps the hardening from eroding: systemd-analyze security must
// rate the unit's exposure at 3.0 or less ("OK"; it was 2.1 when written).
func TestUnitExposure(t *testing.T) {
	sa := systemdAnalyze(t)
	if out, _ := run(t, sa, "security", "--help"); !strings.Contains(out, "--offline") || !strings.Contains(out, "--threshold") {
		t.Skip("systemd-analyze security has no --offline/--threshold here (systemd < 250)")
	}
	out, err := run(t, sa, "security", "--offline=yes", "--threshold=30", testableUnit(t))
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Overall exposure level") {
		t.Fatalf("no exposure level in output:\n%s", out)
	}
}

// TestUnitDirectives checks the choices the install guide and the gateway rely on,
// line by line, so that nobody "hardens" serial access away by accident.
func TestUnitDirectives(t *testing.T) {
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	want := []string{
		"Type=notify", "WatchdogSec=30", "Restart=on-failure", execStart,
		"ExecReload=/bin/kill -HUP $MAINPID", "User=iotgw", "SupplementaryGroups=dialout",
		"StateDirectory=iotgw", "ProtectSystem=strict", "ReadWritePaths=/var/lib/iotgw",
		"PrivateTmp=yes", "NoNewPrivileges=yes", "DevicePolicy=closed",
		"DeviceAllow=char-ttyUSB rw", "DeviceAllow=char-ttyACM rw", "DeviceAllow=char-ttyS rw",
		"WantedBy=multi-user.target",
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("%s: missing line %q", unitPath, w)
		}
	}
	// PrivateDevices=yes hides /dev/ttyUSB0 and friends from the service.
	for l := range lines {
		if strings.HasPrefix(l, "PrivateDevices=") && l != "PrivateDevices=no" {
			t.Errorf("%s: %q would hide the serial ports", unitPath, l)
		}
	}
}
