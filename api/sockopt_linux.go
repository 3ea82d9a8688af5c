package api

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// notSentLowat bounds the bytes a client's socket holds that TCP has not
// sent yet (TCP_NOTSENT_LOWAT): past it a write waits (the writer goroutine)
// or is cut short (reply), so a client that does not read fills its queue or
// times a write out instead of parking megabytes in the kernel, and the
// answers that wait do so in the queue, where the bound and the write
// deadline apply.
const notSentLowat = 128 << 10

func limitUnsent(raw syscall.RawConn) {
	raw.Control(func(fd uintptr) {
		// Best effort: without it the kernel's own limits apply.
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, notSentLowat)
	})
}
