//go:build race

package testpeers

// raceEnabled: the test binary runs with -race, so the daemon is built with it too.
const raceEnabled = true
