// Package e2e holds the end-to-end tests of telestra-sipd (build tag
// integration): each test builds and starts the real daemon on a plan of
// its own, real Kamailio and baresip peers (and PulseAudio for the audio
// tests) through cmd/internal/testpeers, and drives the daemon only through
// its TCP API, checking the result from the peers' side as well.
//
//	go test -race -count=1 -p 1 -tags integration ./cmd/internal/e2e
//
// docs/testing.md explains the layout, ports and how to debug a failure.
package e2e
