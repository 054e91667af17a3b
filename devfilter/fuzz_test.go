package devfilter

import "testing"

// FuzzParse checks that no filter file makes Parse or Allowed panic, and that a
// file that parses gives the same answer twice (the cached one).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"deny":{"C":["a.*"]},"allow":{"C":["ab"]}}`), "C", "ab")
	f.Add([]byte(`{"allow":{"C":[]}}`), "C", "x")
	f.Add([]byte(`{"deny":{"C":["(x"]}}`), "C", "x")
	f.Fuzz(func(t *testing.T, file []byte, conn, dev string) {
		flt, err := Parse("list.json", file)
		if err != nil {
			return
		}
		a := flt.Allowed(conn, dev)
		if b := flt.Allowed(conn, dev); a != b {
			t.Fatalf("Allowed(%q, %q) changed from %v to %v", conn, dev, a, b)
		}
	})
}
