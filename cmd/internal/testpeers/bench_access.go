package testpeers

import "strconv"

// CtrlAddr is "127.0.0.1:PORT" of the peer's ctrl_tcp, for load tools that
// speak netstrings themselves (cmd/internal/apibench -baresip). ctrl_tcp
// serves one connection at a time: such a tool displaces the Baresip's own
// connection, after which Command and WaitEvent no longer work.
func (b *Baresip) CtrlAddr() string { return "127.0.0.1:" + strconv.Itoa(b.ctrlPort) }
