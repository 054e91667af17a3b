package serial

import (
	"bytes"
	"time"
)

// frameMode is how a device's byte stream is cut into frames.
type frameMode uint8

const (
	// modeDelimiter: a frame ends with the delimiter, which it includes.
	modeDelimiter frameMode = iota
	// modeLength: every frame has the same number of bytes.
	modeLength
	// modeGap: a frame ends when the line has been silent for a while after its last byte.
	modeGap
	// modeTimeout: a frame ends a fixed time after its first byte.
	modeTimeout
)

func (m frameMode) String() string {
	switch m {
	case modeLength:
		return "frameLength"
	case modeGap:
		return "frameGapMs"
	case modeTimeout:
		return "frameTimeoutMs"
	}
	return "delimiter"
}

// framing is a device's framing configuration.
type framing struct {
	mode    frameMode
	delim   []byte        // modeDelimiter
	length  int           // modeLength
	period  time.Duration // modeGap: silence; modeTimeout: time after the first byte
	maxSize int           // frames longer than this are dropped
}

// framer cuts a byte stream into frames. Bytes are pushed in blocks as they are read;
// next returns the frames that are complete. It keeps one buffer and reuses it: a frame
// returned by next is valid until the following push.
//
// In the delimiter mode a frame without its delimiter stays in the buffer, however long
// the line is silent, until the delimiter arrives. A frame longer than maxSize is
// dropped (counted by takeDropped) and the framer skips bytes up to the next delimiter
// (or, in the time modes, to the end of that frame) to find the start of a frame again.
type framer struct {
	cfg framing
	buf []byte
	r   int // start of the bytes not yet returned
	// scan is where the next delimiter search starts, so that a long partial frame is
	// not searched again from its start on every push.
	scan int
	// cuts are the ends of frames closed by time but not yet returned (time modes).
	cuts        []int
	first, last time.Time // time modes: first and last byte of the open frame
	discarding  bool      // skipping the rest of an over-long frame
	dropped     int
}

func newFramer(cfg framing) *framer {
	if cfg.maxSize <= 0 {
		cfg.maxSize = defaultMaxFrameSize
	}
	// A small start: a slow device holds a frame or two; a fast one grows the
	// buffer once to a read block and a partial frame. With 1,000 ports this
	// saves megabytes.
	return &framer{cfg: cfg, buf: make([]byte, 0, 256)}
}

// open is the start of the frame not yet closed (time modes).
func (f *framer) open() int {
	if n := len(f.cuts); n > 0 {
		return f.cuts[n-1]
	}
	return f.r
}

func (f *framer) timed() bool { return f.cfg.mode == modeGap || f.cfg.mode == modeTimeout }

// expired reports whether the open frame (or the skipped one) has ended at now.
func (f *framer) expired(now time.Time) bool {
	if f.cfg.mode == modeGap {
		return now.Sub(f.last) >= f.cfg.period
	}
	return now.Sub(f.first) >= f.cfg.period
}

// push appends bytes read at now.
func (f *framer) push(p []byte, now time.Time) {
	if f.timed() {
		if f.discarding {
			if !f.expired(now) {
				f.last = now
				return
			}
			f.discarding = false
		}
		if len(f.buf) > f.open() && f.expired(now) {
			f.cuts = append(f.cuts, len(f.buf))
		}
	}
	if len(p) == 0 {
		return
	}
	f.compact(len(p))
	if f.timed() && len(f.buf) == f.open() {
		f.first = now
	}
	f.last = now
	f.buf = append(f.buf, p...)
	if f.timed() && len(f.buf)-f.open() > f.cfg.maxSize {
		f.buf = f.buf[:f.open()]
		f.discarding = true
		f.dropped++
	}
}

// compact moves the unread bytes to the front of the buffer when that saves growing it.
func (f *framer) compact(adding int) {
	if f.r == 0 {
		return
	}
	if f.r == len(f.buf) {
		f.buf, f.scan, f.r = f.buf[:0], 0, 0
		return
	}
	if f.r < cap(f.buf)/2 && len(f.buf)+adding <= cap(f.buf) {
		return
	}
	n := copy(f.buf, f.buf[f.r:])
	f.buf = f.buf[:n]
	f.scan -= f.r
	if f.scan < 0 {
		f.scan = 0
	}
	for i := range f.cuts {
		f.cuts[i] -= f.r
	}
	f.r = 0
}

// next returns the next complete frame at now, if any.
func (f *framer) next(now time.Time) ([]byte, bool) {
	switch f.cfg.mode {
	case modeLength:
		if len(f.buf)-f.r >= f.cfg.length {
			fr := f.buf[f.r : f.r+f.cfg.length]
			f.r += f.cfg.length
			return fr, true
		}
		return nil, false
	case modeGap, modeTimeout:
		if len(f.cuts) > 0 {
			end := f.cuts[0]
			f.cuts = f.cuts[:copy(f.cuts, f.cuts[1:])]
			fr := f.buf[f.r:end]
			f.r = end
			return fr, true
		}
		if f.discarding && f.expired(now) {
			f.discarding = false
		}
		if len(f.buf) > f.r && f.expired(now) {
			fr := f.buf[f.r:]
			f.r = len(f.buf)
			return fr, true
		}
		return nil, false
	}
	return f.nextDelimited()
}

func (f *framer) nextDelimited() ([]byte, bool) {
	d := f.cfg.delim
	for {
		if f.scan < f.r {
			f.scan = f.r
		}
		i := bytes.Index(f.buf[f.scan:], d)
		if i < 0 {
			break
		}
		end := f.scan + i + len(d)
		fr := f.buf[f.r:end]
		f.r, f.scan = end, end
		if f.discarding {
			f.discarding = false // the rest of the dropped frame ends here
			continue
		}
		if len(fr) > f.cfg.maxSize {
			f.dropped++
			continue
		}
		return fr, true
	}
	// No delimiter: the next search starts where a delimiter could still begin.
	keep := len(d) - 1
	if s := len(f.buf) - keep; s > f.scan {
		f.scan = s
	}
	if f.discarding || len(f.buf)-f.r > f.cfg.maxSize {
		if !f.discarding {
			f.dropped++
			f.discarding = true
		}
		if s := len(f.buf) - keep; s > f.r {
			f.r = s
		}
	}
	return nil, false
}

// deadline is when the open frame ends by time, for a reader to wait no longer than
// that; ok is false when no frame is open or the mode is not timed.
func (f *framer) deadline() (time.Time, bool) {
	if !f.timed() || (len(f.buf) == f.r && !f.discarding) {
		return time.Time{}, false
	}
	if f.cfg.mode == modeGap {
		return f.last.Add(f.cfg.period), true
	}
	return f.first.Add(f.cfg.period), true
}

// flush returns the bytes of an unfinished frame, at the end of a stream.
func (f *framer) flush() ([]byte, bool) {
	if f.discarding || len(f.buf) == f.r {
		return nil, false
	}
	fr := f.buf[f.r:]
	f.r = len(f.buf)
	f.cuts = f.cuts[:0]
	return fr, true
}

// buffered is the number of bytes kept for frames not yet complete.
func (f *framer) buffered() int { return len(f.buf) - f.r }

// takeDropped returns how many over-long frames were dropped since the last call.
func (f *framer) takeDropped() int {
	n := f.dropped
	f.dropped = 0
	return n
}

// reset forgets everything buffered, when the port is reopened.
func (f *framer) reset() {
	f.buf, f.r, f.scan, f.cuts, f.discarding, f.dropped = f.buf[:0], 0, 0, f.cuts[:0], false, 0
}
