package devices

import (
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzEncodeRoundTrip checks that whatever the names, Encode writes JSON that Load
// reads back to the same devices (names with invalid UTF-8 become U+FFFD, as in any
// JSON encoder).
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("Датчик 1", "Serial Connector", "id", "thermo", "")
	f.Add("A \"q\"\\\t\x01\x7f/<&>", "C", "", "default", "New 🌡")
	f.Add("\u2028\u2029", "\x00", "x", "y", "z")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, name, conn, id, typ, renamed string) {
		fix := func(s string) string { return string([]rune(s)) } // one U+FFFD per invalid byte
		d := Device{Name: fix(name), ConnectorName: fix(conn), ConnectorID: fix(id), Type: fix(typ), Renamed: fix(renamed)}
		if d.Type == "" {
			d.Type = "default"
		}
		if d.Renamed == d.Name {
			d.Renamed = ""
		}
		if d.ConnectorName == "" && d.ConnectorID == "" {
			d.ConnectorName = "C"
		}
		path := filepath.Join(dir, "cd.json")
		data := Encode([]Device{{Name: name, ConnectorName: d.ConnectorName, ConnectorID: id, Type: d.Type, Renamed: renamed}})
		for _, c := range data {
			if c >= utf8.RuneSelf {
				t.Fatalf("non-ASCII byte in %q", data)
			}
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, skipped, err := Load(path)
		if err != nil || len(skipped) > 0 || len(got) != 1 {
			t.Fatalf("Load(%s) = %+v, %v, %v", data, got, skipped, err)
		}
		if got[0] != d {
			t.Fatalf("round trip of %s:\n got %+v\nwant %+v", data, got[0], d)
		}
	})
}
