// Package testpeers starts real third-party programs for the integration and
// end-to-end tests: Kamailio (registrar/proxy), baresip (peer UA driven over
// ctrl_tcp), linphonec (peer UA driven on its stdin, in file mode), a private
// PulseAudio server and the telestra-sipd daemon itself.
// It also reads WAV files and measures tones (Goertzel), so a test can check
// what a peer heard.
//
// Only tests import this package. Everything binds to 127.0.0.1, on ports the
// kernel hands out (never 5060, 5100-5199, 4400-4499 or 20000-29999). Every
// process is started in its own process group and stopped by its own PID in
// t.Cleanup. Logs go to a per-test folder that is copied to
// $TMPDIR/telestra-test-logs/ when the test fails (or kept in place when
// TESTPEERS_LOGDIR is set), and the tail of each log is printed.
//
// A missing program is a test failure that names the Debian package to
// install (see .ci/deps), never a skip.
package testpeers
