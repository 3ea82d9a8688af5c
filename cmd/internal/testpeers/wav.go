package testpeers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Audio is decoded PCM: mono samples in [-1, 1) (stereo is averaged).
type Audio struct {
	Rate    int
	Samples []float64
}

// Duration of the audio in seconds.
func (a Audio) Seconds() float64 {
	if a.Rate == 0 {
		return 0
	}
	return float64(len(a.Samples)) / float64(a.Rate)
}

// Slice returns the part between from and to seconds (clamped).
func (a Audio) Slice(from, to float64) Audio {
	i := max(0, min(len(a.Samples), int(from*float64(a.Rate))))
	j := max(i, min(len(a.Samples), int(to*float64(a.Rate))))
	return Audio{Rate: a.Rate, Samples: a.Samples[i:j]}
}

// ReadWAV reads a 16-bit PCM WAV file. A data chunk whose size is 0 or runs
// past the end (a file still being written, as baresip's sndfile leaves it
// during a call) is read to the end of the file.
func ReadWAV(path string) (Audio, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Audio{}, err
	}
	a, err := ParseWAV(b)
	if err != nil {
		return Audio{}, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ParseWAV decodes a 16-bit PCM WAV image (see ReadWAV).
func ParseWAV(b []byte) (Audio, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return Audio{}, errors.New("not a RIFF/WAVE file")
	}
	var rate, channels, bits int
	haveFmt := false
	pos := 12
	for pos+8 <= len(b) {
		id := string(b[pos : pos+4])
		size := int(binary.LittleEndian.Uint32(b[pos+4 : pos+8]))
		body := pos + 8
		switch id {
		case "fmt ":
			if size < 16 || body+16 > len(b) {
				return Audio{}, errors.New("short fmt chunk")
			}
			format := binary.LittleEndian.Uint16(b[body:])
			channels = int(binary.LittleEndian.Uint16(b[body+2:]))
			rate = int(binary.LittleEndian.Uint32(b[body+4:]))
			bits = int(binary.LittleEndian.Uint16(b[body+14:]))
			if (format != 1 && format != 0xFFFE) || bits != 16 || channels < 1 {
				return Audio{}, fmt.Errorf("unsupported WAV format %d, %d bits, %d channels (want 16-bit PCM)", format, bits, channels)
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return Audio{}, errors.New("data chunk before fmt chunk")
			}
			end := body + size
			if size == 0 || end > len(b) || size == 0xFFFFFFFF {
				end = len(b)
			}
			return Audio{Rate: rate, Samples: s16ToMono(b[body:end], channels)}, nil
		}
		pos = body + size + size%2
	}
	return Audio{}, errors.New("no data chunk")
}

// ReadRawS16 reads headerless signed 16-bit little-endian PCM (parec --raw).
func ReadRawS16(path string, rate, channels int) (Audio, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Audio{}, err
	}
	return Audio{Rate: rate, Samples: s16ToMono(b, channels)}, nil
}

func s16ToMono(b []byte, channels int) []float64 {
	frames := len(b) / (2 * channels)
	out := make([]float64, frames)
	for i := range frames {
		var sum float64
		for c := range channels {
			o := (i*channels + c) * 2
			sum += float64(int16(binary.LittleEndian.Uint16(b[o:]))) / 32768
		}
		out[i] = sum / float64(channels)
	}
	return out
}

// WriteWAV writes mono 16-bit PCM.
func WriteWAV(w io.Writer, rate int, samples []int16) error {
	data := uint32(len(samples) * 2)
	hdr := make([]byte, 44)
	copy(hdr[0:], "RIFF")
	binary.LittleEndian.PutUint32(hdr[4:], 36+data)
	copy(hdr[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(hdr[16:], 16)
	binary.LittleEndian.PutUint16(hdr[20:], 1) // PCM
	binary.LittleEndian.PutUint16(hdr[22:], 1) // mono
	binary.LittleEndian.PutUint32(hdr[24:], uint32(rate))
	binary.LittleEndian.PutUint32(hdr[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(hdr[32:], 2)
	binary.LittleEndian.PutUint16(hdr[34:], 16)
	copy(hdr[36:], "data")
	binary.LittleEndian.PutUint32(hdr[40:], data)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, len(samples)*2)
	for i, s := range samples {
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(s))
	}
	_, err := w.Write(buf)
	return err
}

// WriteToneWAV writes a mono 16-bit sine of hz at amplitude amp (0..1) for
// seconds, e.g. a long aufile source for baresip (aufile hangs up at EOF).
func WriteToneWAV(path string, rate int, hz, amp, seconds float64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteWAV(f, rate, Sine(rate, hz, amp, seconds)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
