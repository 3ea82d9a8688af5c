//go:build integration

package hw

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// alsaPulseDir is where the ALSA tests' PulseAudio puts its socket; the
// ALSA configuration below points at it.
var alsaPulseDir string

// TestMain gives the integration tests a private HOME holding an .asoundrc,
// so the real ~/.asoundrc is never touched. libasound reads its
// configuration once per process, so this is set up once, before any test
// opens a PCM, and the socket path stays the same for the whole run.
func TestMain(m *testing.M) {
	home, err := os.MkdirTemp("", "hw-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	alsaPulseDir = filepath.Join(home, "pa")
	code := 1
	if err := setupHome(home); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(home)
	os.Exit(code)
}

func setupHome(home string) error {
	if err := os.Mkdir(alsaPulseDir, 0o700); err != nil {
		return err
	}
	server := "unix:" + filepath.Join(alsaPulseDir, "native")
	var rc strings.Builder
	// A plug in front of the pulse plugin, as "default" is on a real system.
	// (Forcing the plug's slave to 48 kHz fails with the pulse plugin:
	// "Unable to install hw params"; PulseAudio resamples instead. The
	// rate-converting plug is opened against a null PCM, null48.)
	rc.WriteString("# PCMs for the hw integration tests (written by TestMain).\n")
	for _, p := range []struct{ name, device string }{
		{"chan1", "chan1"}, {"chan2", "chan2"},
		{"chan1mon", "chan1.monitor"}, {"chan2mon", "chan2.monitor"},
	} {
		fmt.Fprintf(&rc, "pcm.%s { type plug slave.pcm \"%s_pulse\" }\n", p.name, p.name)
		fmt.Fprintf(&rc, "pcm.%s_pulse { type pulse device \"%s\" server \"%s\" }\n", p.name, p.device, server)
	}
	rc.WriteString("pcm.null48 { type plug slave { pcm { type null } rate 48000 } }\n")
	if err := os.WriteFile(filepath.Join(home, ".asoundrc"), []byte(rc.String()), 0o600); err != nil {
		return err
	}
	return os.Setenv("HOME", home)
}
