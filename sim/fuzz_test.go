package sim

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// FuzzTemplate compiles arbitrary scenario text: it either fails with an
// error or renders without panicking, literal text coming out unchanged.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{DefaultFrame, DefaultReply, "{{rand 1.5 2}}|{{ts_us}}", "{{", "}}{{seq}}", "{{walk -1e9 1e9}}", "a\r\n\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tm, err := compileTemplate(text, 0)
		if err != nil {
			return
		}
		c := &frameCtx{seq: 1, serial: "s", rng: rand.New(rand.NewPCG(1, 2)), walks: make([]float64, tm.walks),
			now: time.Now, input: []byte{1}}
		for i := range c.walks {
			c.walks[i] = nan()
		}
		out := string(tm.render(nil, c))
		if !strings.Contains(text, "{{") && out != text {
			t.Fatalf("render(%q) = %q, want the text unchanged", text, out)
		}
	})
}
