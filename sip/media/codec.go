package media

import (
	"strings"
	"time"

	"github.com/telestra/telestra-sip/sip/media/g722"
)

// Encoder codes one frame of PCM at the codec's sample rate into a payload
// and returns the bytes written. Stateful codecs (G.722) keep their state
// between calls: a session owns one per direction.
type Encoder interface {
	Encode(dst []byte, src []int16) int
}

// Decoder decodes one payload into PCM and returns the samples written.
type Decoder interface {
	Decode(dst []int16, src []byte) int
}

// EncoderFunc adapts a stateless function (G.711) to Encoder.
type EncoderFunc func(dst []byte, src []int16) int

// Encode implements Encoder.
func (f EncoderFunc) Encode(dst []byte, src []int16) int { return f(dst, src) }

// DecoderFunc adapts a stateless function (G.711) to Decoder.
type DecoderFunc func(dst []int16, src []byte) int

// Decode implements Decoder.
func (f DecoderFunc) Decode(dst []int16, src []byte) int { return f(dst, src) }

// resetter is implemented by stateful coders; a new stream resets them.
type resetter interface{ Reset() }

// codecImpl is the codec table: the only place that knows clock rates and
// byte sizes.
type codecImpl struct {
	name string
	// clockRate is RTP timestamp units per second; sampleRate the PCM rate.
	// They differ for G.722 (RFC 3551 §4.5.2: 8000 for 16 kHz audio).
	clockRate  int
	sampleRate int
	// samplesFor is how many samples one payload of n bytes carries.
	samplesFor func(n int) int
	// bytesFor is the payload size for n samples.
	bytesFor   func(n int) int
	newEncoder func() Encoder
	newDecoder func() Decoder
}

func oneToOne(n int) int { return n }
func twice(n int) int    { return 2 * n }
func half(n int) int     { return n / 2 }

var codecs = map[string]*codecImpl{
	"PCMU": {name: "PCMU", clockRate: 8000, sampleRate: 8000, samplesFor: oneToOne, bytesFor: oneToOne,
		newEncoder: func() Encoder { return EncoderFunc(encodeUlaw) },
		newDecoder: func() Decoder { return DecoderFunc(decodeUlaw) }},
	"PCMA": {name: "PCMA", clockRate: 8000, sampleRate: 8000, samplesFor: oneToOne, bytesFor: oneToOne,
		newEncoder: func() Encoder { return EncoderFunc(encodeAlaw) },
		newDecoder: func() Decoder { return DecoderFunc(decodeAlaw) }},
	"G722": {name: "G722", clockRate: 8000, sampleRate: 16000, samplesFor: twice, bytesFor: half,
		newEncoder: func() Encoder { return g722.NewEncoder() },
		newDecoder: func() Decoder { return g722.NewDecoder() }},
}

func lookupCodec(name string) *codecImpl {
	return codecs[strings.ToUpper(name)]
}

// codecState is one session's instance of a codec: the table entry and its
// own encoder and decoder.
type codecState struct {
	*codecImpl
	enc Encoder
	dec Decoder
}

func (c *codecImpl) instance() *codecState {
	return &codecState{codecImpl: c, enc: c.newEncoder(), dec: c.newDecoder()}
}

// resetDecoder starts the decoder afresh for a new incoming stream.
func (c *codecState) resetDecoder() {
	if r, ok := c.dec.(resetter); ok {
		r.Reset()
	}
}

// FrameSamples is the number of PCM samples one packet of codec c carries
// at ptime, at the codec's sample rate.
func (c Codec) FrameSamples(ptime time.Duration) int {
	rate := c.ClockRate
	if impl := lookupCodec(c.Name); impl != nil {
		rate = impl.sampleRate
	}
	return int(int64(rate) * int64(ptime) / int64(time.Second))
}

// SampleRate is the PCM rate of the named codec: 16000 for G722, 8000 for
// G.711; 0 if unsupported.
func SampleRate(name string) int {
	if impl := lookupCodec(name); impl != nil {
		return impl.sampleRate
	}
	return 0
}

// ChannelRate is the audio channel rate that carries every codec of a
// plan's list without losing band: 16000 when G722 is listed, else 8000.
func ChannelRate(codecs []string) int {
	r := 8000
	for _, n := range codecs {
		r = max(r, SampleRate(n))
	}
	return r
}
