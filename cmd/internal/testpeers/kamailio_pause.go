package testpeers

import "syscall"

// Pause stops every Kamailio process (SIGSTOP to its process group): a
// registrar that is there but does not answer.
func (k *Kamailio) Pause() error { return syscall.Kill(-k.PID(), syscall.SIGSTOP) }

// Continue resumes a paused Kamailio.
func (k *Kamailio) Continue() error { return syscall.Kill(-k.PID(), syscall.SIGCONT) }
