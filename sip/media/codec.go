package media

import (
	"strings"
	"time"
)

// codecImpl is the codec table: the only place that knows clock rates and
// byte sizes. A 16 kHz codec (G.722, L16/16000) is one more entry here.
type codecImpl struct {
	name      string
	clockRate int // RTP timestamp units per second, also the PCM sample rate
	// samplesFor is how many samples one payload of n bytes carries.
	samplesFor func(n int) int
	// bytesFor is the payload size for n samples.
	bytesFor func(n int) int
	encode   func(dst []byte, src []int16) int
	decode   func(dst []int16, src []byte) int
}

func oneToOne(n int) int { return n }

var codecs = map[string]*codecImpl{
	"PCMU": {name: "PCMU", clockRate: 8000, samplesFor: oneToOne, bytesFor: oneToOne, encode: encodeUlaw, decode: decodeUlaw},
	"PCMA": {name: "PCMA", clockRate: 8000, samplesFor: oneToOne, bytesFor: oneToOne, encode: encodeAlaw, decode: decodeAlaw},
}

func lookupCodec(name string) *codecImpl {
	return codecs[strings.ToUpper(name)]
}

// FrameSamples is the number of samples (and AudioPort frame length) one
// packet of codec c carries at ptime.
func (c Codec) FrameSamples(ptime time.Duration) int {
	rate := c.ClockRate
	if impl := lookupCodec(c.Name); impl != nil {
		rate = impl.clockRate
	}
	return int(int64(rate) * int64(ptime) / int64(time.Second))
}
