// Package reliability holds the project's reliability tests and budgets,
// run against the real daemon, Kamailio, baresip and SIPp (integration tag):
//
//   - TestSoak: SOAK_CALLS calls in a row through Kamailio to baresip
//     (CI: the default; `make soak`: 10 000), with goroutines, threads, fds
//     and RSS at start, middle and end and the set-up latency of the first
//     and last 100 calls;
//   - TestInviteFlood: SIPp at 100 calls/s for 10 s against an account with
//     max-calls;
//   - TestMalformedSIP: garbage, truncation, wrong Content-Length, huge
//     headers, many Vias, bad SDP, unknown codecs and unknown dialogs over
//     UDP and TCP, the daemon answering after each;
//   - TestRegistrarFrozen, TestRegistrarRestarted, TestPeerKilledMidCall,
//     TestSignalsWithCalls: faults around the daemon.
//
// The budgets (RSS back within 5 MB of idle, goroutines back to idle, fds
// and threads flat, last-100 set-up latency ≤ 1.2× the first 100) are
// benchmarks, BenchmarkSoakBudget and BenchmarkFloodBudget, run by
// `make soak`; docs/benchmarks.md records their figures. The daemon runs
// with -debug-addr so the tests can read its figures (/debug/stats).
package reliability
