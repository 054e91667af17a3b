package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
)

// Segment file layout:
//
//	header  8 bytes  segMagic
//	frame*  len uint32 LE | crc uint32 LE | payload (len bytes)
//
// crc is CRC32C (Castagnoli) of the 4 length bytes followed by the payload.
// Covering the length means that a region of zeros (what a file system may leave
// after a crash when the size was updated before the data) never passes as a
// valid empty record.

const (
	segMagic    = "IGWSEG1\n"
	segHeader   = int64(len(segMagic))
	frameHeader = 8
	segSuffix   = ".seg"
	segNameLen  = 20 // digits of the first sequence number
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a frame whose length or checksum is wrong.
var errCorrupt = errors.New("corrupt record")

// segName is the file name of the segment whose first record is first.
func segName(first uint64) string {
	return fmt.Sprintf("%020d%s", first, segSuffix)
}

// parseSegName returns the first sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != segNameLen {
		return 0, false
	}
	for _, ch := range digits {
		if ch < '0' || ch > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// appendFrame appends the frame of one record to dst.
func appendFrame(dst, rec []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(rec)))
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, rec)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, rec...)
}

// readFrame reads one frame and appends its payload to dst. It returns io.EOF at
// a clean end, io.ErrUnexpectedEOF for a frame cut short and errCorrupt for a bad
// length or checksum; dst is returned unchanged on error.
func readFrame(r *bufio.Reader, dst []byte) ([]byte, error) {
	h, err := r.Peek(frameHeader)
	if err != nil {
		if len(h) == 0 && err == io.EOF {
			return dst, io.EOF
		}
		if err == io.EOF {
			return dst, io.ErrUnexpectedEOF
		}
		return dst, err
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	want := binary.LittleEndian.Uint32(h[4:8])
	if n > MaxRecordSize {
		return dst, errCorrupt
	}
	crc := crc32.Update(0, castagnoli, h[0:4])
	if _, err := r.Discard(frameHeader); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	if _, err := io.ReadFull(r, dst[start:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return dst[:start], err
	}
	if crc32.Update(crc, castagnoli, dst[start:]) != want {
		return dst[:start], errCorrupt
	}
	return dst, nil
}

// skipFrame reads one frame, checks it and forgets it.
func skipFrame(r *bufio.Reader, scratch []byte) ([]byte, error) {
	out, err := readFrame(r, scratch[:0])
	return out[:0], err
}

// scanResult is what scanning a segment found.
type scanResult struct {
	count int64 // valid records
	size  int64 // bytes up to the end of the last valid record (header included)
	// torn is set when bytes follow the last valid record (a torn or corrupt tail)
	// or when the header is missing or wrong.
	torn bool
}

// scanSegment checks a whole segment and finds where its valid part ends.
func scanSegment(r io.Reader) (scanResult, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var res scanResult
	hdr := make([]byte, segHeader)
	n, err := io.ReadFull(br, hdr)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return res, err
	}
	if n < len(hdr) || string(hdr) != segMagic {
		res.torn = n > 0
		return res, nil
	}
	res.size = segHeader
	var scratch []byte
	for {
		scratch, err = readFrame(br, scratch[:0])
		switch {
		case err == nil:
			res.count++
			res.size += frameHeader + int64(len(scratch))
		case err == io.EOF:
			return res, nil
		case err == io.ErrUnexpectedEOF || errors.Is(err, errCorrupt):
			res.torn = true
			return res, nil
		default:
			return res, err
		}
	}
}

// boundedReader reads a file from off up to limit with pread, so that the reader
// never sees bytes past what the committer finished writing.
type boundedReader struct {
	f     *os.File
	off   int64
	limit int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.off >= b.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > b.limit-b.off {
		p = p[:b.limit-b.off]
	}
	n, err := b.f.ReadAt(p, b.off)
	b.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}
