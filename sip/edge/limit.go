package edge

import (
	"sync"
	"time"
)

// maxKeys bounds the memory of a limiter: a flood from many (spoofed)
// sources shares one overflow key instead of growing the map.
const maxKeys = 1024

// limiter allows perKey events per window for each key and, when total
// is not 0, total events per window over all keys. It remembers how many
// events it refused for a key so the next allowed report can say so.
type limiter struct {
	window        time.Duration
	perKey, total int

	mu          sync.Mutex
	start       time.Time // of the current window
	count       int       // events allowed in the window, all keys
	keys        map[string]*keyState
	overflowSup int // refused because of total or maxKeys
}

type keyState struct {
	start      time.Time
	n          int
	suppressed int
}

func newLimiter(window time.Duration, perKey, total int) *limiter {
	return &limiter{window: window, perKey: perKey, total: total, keys: map[string]*keyState{}}
}

func (l *limiter) allow(key string, now time.Time) bool {
	ok, _ := l.allowReport(key, now)
	return ok
}

// allowReport reports whether an event for key may happen now and, when
// it may, how many were refused since the last allowed one.
func (l *limiter) allowReport(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.window {
		l.start, l.count = now, 0
		for k, s := range l.keys {
			if now.Sub(s.start) >= l.window && s.suppressed == 0 {
				delete(l.keys, k)
			}
		}
	}
	s := l.keys[key]
	if s == nil {
		if len(l.keys) >= maxKeys {
			l.overflowSup++
			return false, 0
		}
		s = &keyState{start: now}
		l.keys[key] = s
	}
	if now.Sub(s.start) >= l.window {
		s.start, s.n = now, 0
	}
	if s.n >= l.perKey || (l.total > 0 && l.count >= l.total) {
		s.suppressed++
		return false, 0
	}
	s.n++
	l.count++
	sup := s.suppressed + l.overflowSup
	s.suppressed, l.overflowSup = 0, 0
	return true, sup
}
