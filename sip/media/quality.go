package media

import "math"

// Quality is a listening-quality estimate of the stream we receive.
type Quality struct {
	R   float64 // E-model transmission rating, 0..100
	MOS float64 // MOS-CQE from R, 1..4.5
}

// QualityInput is what the estimate is computed from.
type QualityInput struct {
	LossPct  float64 // packets lost of those expected, percent (0..100)
	JitterMs float64 // RFC 3550 interarrival jitter
	RTTMs    float64 // RTCP round trip; 0: unknown (network delay counted as 0)
	BufferMs float64 // jitter buffer depth (playout delay we add)
	PTimeMs  float64 // packetisation
}

// The narrowband E-model with G.711's values, whatever the codec: ITU-T
// G.113 Appendix I gives G.711 with packet loss concealment Ie = 0 and
// Bpl = 25.1 (random loss). A G.722 call is rated on the same scale (no
// wideband E-model, G.107.1), so figures compare calls of either codec
// without crediting G.722's wider band.
const (
	g711Ie  = 0.0
	g711Bpl = 25.1
	// r0MinusIs is G.107's default Ro - Is (all other parameters at
	// their defaults, advantage factor A = 0).
	r0MinusIs = 93.2
)

// EstimateQuality is the ITU-T G.107 E-model reduced to the terms a
// receiver knows: R = 93.2 - Id - Ie,eff, with Ie,eff = Ie + (95 - Ie) *
// Ppl / (Ppl + Bpl) (random loss, BurstR = 1) and the delay impairment Id
// of the Cole-Rosenbluth approximation (Id = 0.024 d + 0.11 (d - 177.3)
// for d > 177.3 ms), where the one-way delay d is RTT/2 plus the jitter
// buffer (or twice the jitter when no buffer depth is known) plus the
// packetisation time. MOS is G.107's conversion from R. It ignores echo,
// noise, loudness, burstiness of the loss and the codec's own distortion
// beyond G.113's Ie.
func EstimateQuality(in QualityInput) Quality {
	buffer := in.BufferMs
	if buffer <= 0 {
		buffer = 2 * in.JitterMs
	}
	d := max(0, in.RTTMs/2) + max(0, buffer) + max(0, in.PTimeMs)
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ppl := math.Min(math.Max(in.LossPct, 0), 100)
	ie := g711Ie + (95-g711Ie)*ppl/(ppl+g711Bpl)
	r := math.Min(math.Max(r0MinusIs-id-ie, 0), 100)
	return Quality{R: r, MOS: mosFromR(r)}
}

// mosFromR is ITU-T G.107 Annex B.
func mosFromR(r float64) float64 {
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
}
