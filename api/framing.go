package api

import (
	"bytes"
	"errors"
	"io"
)

// ErrMessageTooLong is returned by FrameReader.Next for a message longer than
// the limit. It is not fatal: the reader skips the rest of that message up to
// its terminating NUL and the next call returns the message after it.
var ErrMessageTooLong = errors.New("message too long")

// FrameReader splits a byte stream into NUL-terminated messages. Whitespace
// between messages (including "\r\n") is skipped, so is an empty message
// (a lone NUL). It does not check JSON or UTF-8: ParseCommand does.
type FrameReader struct {
	r          io.Reader
	max        int
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	discarding bool
	err        error // sticky read error, returned once the buffer is empty
}

// NewFrameReader returns a reader of messages of at most max bytes (not
// counting the NUL and the whitespace before the message); max <= 0 means
// the smallest limit, 1 byte (the server passes the plan's
// max-message-bytes).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max < 1 {
		max = 1
	}
	return &FrameReader{r: r, max: max, buf: make([]byte, min(4096, max+1))}
}

// Next returns the next message without its NUL and without surrounding
// whitespace. The slice is only valid until the next call. Errors:
// ErrMessageTooLong (not fatal, see above), io.EOF at a clean end of stream,
// io.ErrUnexpectedEOF when the stream ends inside a message, or the
// underlying reader's error.
func (f *FrameReader) Next() ([]byte, error) {
	for {
		data := f.buf[f.start:f.end]
		if f.discarding {
			if i := bytes.IndexByte(data, 0); i >= 0 {
				f.start += i + 1
				f.discarding = false
				continue
			}
			f.start, f.end = 0, 0
		} else {
			n := 0
			for n < len(data) && isSpace(data[n]) {
				n++
			}
			f.start += n
			data = data[n:]
			if i := bytes.IndexByte(data, 0); i >= 0 {
				f.start += i + 1
				if i > f.max {
					return nil, ErrMessageTooLong
				}
				msg := bytes.TrimRight(data[:i], " \t\r\n")
				if len(msg) == 0 {
					continue
				}
				return msg, nil
			}
			if len(data) > f.max {
				// Report it now, not at the NUL: a client stuck in an
				// endless message still learns why nothing happens.
				f.discarding = true
				f.start, f.end = 0, 0
				return nil, ErrMessageTooLong
			}
		}
		if f.err != nil {
			if f.err == io.EOF && (f.discarding || f.end > f.start) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, f.err
		}
		f.fill()
	}
}

// fill reads more bytes, compacting and growing the buffer up to max+1 bytes
// (enough to tell that a message is too long).
func (f *FrameReader) fill() {
	if f.start > 0 {
		f.end = copy(f.buf, f.buf[f.start:f.end])
		f.start = 0
	}
	if f.end == len(f.buf) {
		nb := make([]byte, min(2*len(f.buf), f.max+1))
		copy(nb, f.buf[:f.end])
		f.buf = nb
	}
	for range 100 {
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if err != nil {
			f.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	f.err = io.ErrNoProgress
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// AppendFrame appends msg and the terminating NUL to dst.
func AppendFrame(dst, msg []byte) []byte {
	return append(append(dst, msg...), 0)
}
