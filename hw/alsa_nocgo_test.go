//go:build !cgo

package hw

import (
	"strings"
	"testing"
	"time"
)

func TestALSARequiresCgo(t *testing.T) {
	_, err := Open(Config{Backend: "alsa", Format: tel, FrameTime: 20 * time.Millisecond}, ChannelConfig{Name: "a"}, nil)
	if err == nil || !strings.Contains(err.Error(), "alsa backend requires a cgo build") {
		t.Fatalf("err = %v, want the cgo explanation", err)
	}
}
