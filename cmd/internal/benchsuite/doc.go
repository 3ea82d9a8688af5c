// Package benchsuite holds the project's end-to-end benchmarks. They need
// real Kamailio and baresip, so they are built only with the integration tag:
//
//	go test -tags integration -run '^$' -bench . -benchtime 1x ./cmd/internal/benchsuite/
//
// Every figure comes with a reference measured in the same run (baresip for
// the API round trip and the call set-up), so a ratio survives a busy
// machine. .ci/bench (make bench) runs them with the unit benchmarks and
// rtpload; docs/benchmarks.md records the figures.
package benchsuite
