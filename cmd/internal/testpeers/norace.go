//go:build !race

package testpeers

const raceEnabled = false
