package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// py38Devices is testdata/connected_devices_py38.json, which Python's
// json.dumps(indent=2, sort_keys=True) wrote.
var py38Devices = []Device{
	{Name: "A \"quoted\"\\path\t\x01\x7f/<&>", Type: "default", ConnectorName: "C", Renamed: "New 🌡"},
	{Name: "B", Type: "default", ConnectorName: "Modbus", ConnectorID: "m1"},
	{Name: "Датчик 1", Type: "thermo", ConnectorName: "Serial Connector", ConnectorID: "id-1"},
}

func TestEncodeMatchesPython(t *testing.T) {
	want, err := os.ReadFile("testdata/connected_devices_py38.json")
	if err != nil {
		t.Fatal(err)
	}
	// Order of the input does not matter.
	in := []Device{py38Devices[2], py38Devices[0], py38Devices[1]}
	if got := Encode(in); string(got) != string(want) {
		t.Fatalf("Encode:\n%s\nwant (Python):\n%s", got, want)
	}
	if got := Encode(nil); string(got) != "{}" {
		t.Fatalf("Encode(nil) = %q, want {} as Python writes", got)
	}
	if !json.Valid(Encode([]Device{{Name: "bad \xff utf8", Type: "t"}})) {
		t.Fatal("invalid UTF-8 must still give valid JSON")
	}
}

func TestLoadShapes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name        string
		path        string
		want        []Device
		wantSkipped []string
		wantErr     string
	}{
		{name: "3.8 dict shape", path: "testdata/connected_devices_py38.json", want: py38Devices},
		{name: "3.0-3.6 list shape", path: "testdata/connected_devices_py36.json", want: []Device{
			{Name: "Old A", Type: "thermo", ConnectorName: "Serial Connector", Renamed: "Renamed A"},
			{Name: "Old B", Type: "default", ConnectorName: "Modbus"},
		}},
		{name: "2.x string shape", path: "testdata/connected_devices_py2.json", want: []Device{
			{Name: "Ancient", Type: "default", ConnectorName: "MQTT Broker Connector"},
		}},
		{name: "missing file", path: filepath.Join(dir, "nope.json")},
		{name: "empty file (Python creates one)", path: write("empty.json", " \n")},
		{name: "empty object", path: write("obj.json", "{}")},
		{name: "bad entries skipped, good kept", path: write("mixed.json", `{
			"ok": {"connectorName": "C", "connectorId": "1", "deviceType": null, "renaming": "ok"},
			"num": 5,
			"nothing": {"deviceType": "t"},
			"list": [],
			"badlist": [1, 2],
			"badobj": {"connectorName": 7}
		}`), want: []Device{{Name: "ok", Type: "default", ConnectorName: "C", ConnectorID: "1"}},
			wantSkipped: []string{`"badlist"`, `"badobj"`, `"list"`, `"nothing"`, `"num"`}},
		{name: "not an object", path: write("arr.json", `[1]`), wantErr: "arr.json: expected a JSON object of devices"},
		{name: "syntax error", path: write("syn.json", `{"a":`), wantErr: "syn.json: expected a JSON object of devices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, skipped, err := Load(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("devices:\n%+v\nwant:\n%+v", got, tt.want)
			}
			if len(skipped) != len(tt.wantSkipped) {
				t.Fatalf("skipped %v, want %d", skipped, len(tt.wantSkipped))
			}
			for i, s := range skipped {
				if !strings.Contains(s.Error(), tt.path) || !strings.Contains(s.Error(), tt.wantSkipped[i]) {
					t.Errorf("skipped[%d] = %v, want the file and %s", i, s, tt.wantSkipped[i])
				}
			}
		})
	}
}

func TestSaveAtomicRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte(`{"old": "junk"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, py38Devices); err != nil {
		t.Fatal(err)
	}
	got, skipped, err := Load(path)
	if err != nil || len(skipped) > 0 || !reflect.DeepEqual(got, py38Devices) {
		t.Fatalf("round trip: %+v %v %v", got, skipped, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v, %v; want 0644", fi.Mode(), err)
	}
	if err := Save(filepath.Join(dir, "missing", FileName), nil); err == nil {
		t.Fatal("saving into a missing folder must fail")
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	if !r.Add(Device{Name: "A", ConnectorName: "Serial", ConnectorID: "s1"}) {
		t.Fatal("Add new: want true")
	}
	if r.Add(Device{Name: "A", Type: "default", ConnectorName: "Serial", ConnectorID: "s1"}) {
		t.Fatal("Add same: want false")
	}
	r.Add(Device{Name: "B", Type: "meter", ConnectorName: "Serial", ConnectorID: "s1"})

	steps := []struct {
		op         string // rename OLD NEW | delete NAME
		a, b       string
		wantOK     bool
		lookups    map[string]string // platform name → connector-side name ("" = none)
		platformOf map[string]string // connector-side name → platform name
	}{
		{"rename", "A", "A2", true,
			map[string]string{"A": "", "A2": "A", "B": "B"},
			map[string]string{"A": "A2", "B": "B", "X": "X"}},
		{"rename", "A2", "A3", true, // chains
			map[string]string{"A": "", "A2": "", "A3": "A"},
			map[string]string{"A": "A3"}},
		{"rename", "A", "Z", false, // A is no longer a platform name
			map[string]string{"A3": "A", "Z": ""},
			map[string]string{"A": "A3"}},
		{"rename", "A3", "A", true, // renamed back to the connector's name
			map[string]string{"A": "A", "A3": ""},
			map[string]string{"A": "A"}},
		{"rename", "B", "B2", true,
			map[string]string{"B2": "B", "B": ""},
			map[string]string{"B": "B2"}},
		{"delete", "B2", "", true, // by platform name
			map[string]string{"B2": "", "B": ""},
			map[string]string{"B": "B"}},
		{"delete", "A", "", true,
			map[string]string{"A": ""},
			nil},
		{"delete", "A", "", false, nil, nil},
	}
	for i, s := range steps {
		var ok bool
		if s.op == "rename" {
			_, ok = r.Rename(s.a, s.b)
		} else {
			_, ok = r.Delete(s.a)
		}
		if ok != s.wantOK {
			t.Fatalf("step %d %s %s %s: ok = %v", i, s.op, s.a, s.b, ok)
		}
		for p, want := range s.lookups {
			d, found := r.Lookup(p)
			if found != (want != "") || d.Name != want {
				t.Fatalf("step %d: Lookup(%q) = %q, %v; want %q", i, p, d.Name, found, want)
			}
		}
		for n, want := range s.platformOf {
			if got := r.PlatformName(n); got != want {
				t.Fatalf("step %d: PlatformName(%q) = %q, want %q", i, n, got, want)
			}
		}
	}
	if r.Len() != 0 || len(r.List()) != 0 {
		t.Fatalf("registry not empty: %v", r.List())
	}
}

func TestAddKeepsRename(t *testing.T) {
	r := NewRegistry()
	r.Add(Device{Name: "A", ConnectorName: "C"})
	r.Rename("A", "New")
	if r.Add(Device{Name: "A", ConnectorName: "C"}) {
		t.Fatal("re-adding an unchanged renamed device must not count as a change")
	}
	r.Add(Device{Name: "A", Type: "t2", ConnectorName: "C"})
	d, ok := r.Lookup("New")
	if !ok || d.Type != "t2" || d.Renamed != "New" {
		t.Fatalf("Lookup(New) = %+v, %v", d, ok)
	}
	if got := r.List(); len(got) != 1 || got[0].PlatformName() != "New" {
		t.Fatalf("List = %+v", got)
	}
	r.Add(Device{Name: "A", ConnectorName: "C", Renamed: "Newer"})
	if _, ok := r.Lookup("New"); ok {
		t.Fatal("old platform name still routes")
	}
	if d, ok := r.Lookup("Newer"); !ok || d.Name != "A" {
		t.Fatal("new platform name does not route")
	}
}

func TestParseRPCParams(t *testing.T) {
	for _, tt := range []struct {
		in       any
		old, new string
		err      bool
	}{
		{map[string]any{"Old": "New"}, "Old", "New", false},
		{json.RawMessage(`{"Old dev":"New dev"}`), "Old dev", "New dev", false},
		{[]byte(`{"a":"b"}`), "a", "b", false},
		{map[string]any{}, "", "", true},
		{map[string]any{"a": "b", "c": "d"}, "", "", true},
		{map[string]any{"a": 1}, "", "", true},
		{map[string]any{"a": ""}, "", "", true},
		{"Old", "", "", true},
		{json.RawMessage(`[1]`), "", "", true},
		{nil, "", "", true},
	} {
		o, n, err := ParseRenamed(tt.in)
		if (err != nil) != tt.err || o != tt.old || n != tt.new {
			t.Errorf("ParseRenamed(%v) = %q, %q, %v", tt.in, o, n, err)
		}
	}
	for _, tt := range []struct {
		in   any
		want string
		err  bool
	}{
		{"Dev", "Dev", false},
		{json.RawMessage(`"Dev 2"`), "Dev 2", false},
		{json.RawMessage(`{}`), "", true},
		{"", "", true},
		{5, "", true},
	} {
		got, err := ParseDeleted(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseDeleted(%v) = %q, %v", tt.in, got, err)
		}
	}
}

func TestStoreDebouncesAndFlushesOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	r := NewRegistry()
	r.Add(Device{Name: "boot", ConnectorName: "C"}) // before the store: written once
	var writes atomic.Int32
	s := openStore(path, r, StoreOptions{Interval: 200 * time.Millisecond}, func(p string, d []Device) error {
		writes.Add(1)
		return Save(p, d)
	})
	start := time.Now()
	for i := 0; i < 200; i++ {
		r.Add(Device{Name: fmt.Sprintf("d%03d", i), ConnectorName: "C"})
	}
	burst := time.Since(start)
	time.Sleep(50 * time.Millisecond)
	if n, limit := writes.Load(), int32(2+burst/(200*time.Millisecond)); n > limit {
		t.Fatalf("%d writes for a burst of %v, want at most %d", n, burst, limit)
	}
	r.Delete("d000")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, err := Load(path)
	if err != nil || len(got) != 200 || got[0].Name != "boot" || got[1].Name != "d001" {
		t.Fatalf("after Close: %d devices, first %+v, err %v", len(got), got[:min(2, len(got))], err)
	}
	n := writes.Load()
	r.Add(Device{Name: "late", ConnectorName: "C"}) // after Close: nobody writes
	time.Sleep(20 * time.Millisecond)
	if writes.Load() != n {
		t.Fatal("a closed store wrote")
	}
}

func TestStoreWritesSoonAfterAChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	r := NewRegistry()
	s := OpenStore(path, r, StoreOptions{Interval: 20 * time.Millisecond})
	defer s.Close()
	r.Add(Device{Name: "A", ConnectorName: "C", ConnectorID: "c1"})
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, _, _ := Load(path)
		if len(got) == 1 && got[0].ConnectorID == "c1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the change was not written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestStoreRetriesAfterError(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	r := NewRegistry()
	var mu sync.Mutex
	fail := true
	s := openStore(path, r, StoreOptions{Interval: time.Hour}, func(p string, d []Device) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("disk full")
		}
		return Save(p, d)
	})
	r.Add(Device{Name: "A", ConnectorName: "C"})
	if err := s.Flush(); err == nil {
		t.Fatal("Flush must report the write error")
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := Load(path); len(got) != 1 {
		t.Fatalf("after a failed write, Close did not write: %v", got)
	}
}
