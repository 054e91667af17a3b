package tbmqtt

import (
	"math/rand/v2"
	"time"
)

// backoff yields reconnect delays: exponential with full jitter above a floor.
// Step k draws uniformly from [min, min(max, min·2^(k+1))], so the ceiling doubles
// each step up to max while no delay is ever shorter than min (no tight loop, even
// when the draw is unlucky) and clients that lost the same broker spread out.
type backoff struct {
	min, max time.Duration
	ceil     time.Duration
}

func newBackoff(minD, maxD time.Duration) *backoff {
	b := &backoff{min: minD, max: maxD}
	b.reset()
	return b
}

// reset starts again from the first step (after a successful connect).
func (b *backoff) reset() { b.ceil = b.min }

// next returns the delay before the next attempt and advances one step.
func (b *backoff) next() time.Duration {
	if b.ceil < b.max {
		b.ceil *= 2
		if b.ceil > b.max || b.ceil <= 0 {
			b.ceil = b.max
		}
	}
	if b.ceil <= b.min {
		return b.min
	}
	return b.min + rand.N(b.ceil-b.min+1)
}
