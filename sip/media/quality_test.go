package media

import (
	"math"
	"testing"
)

func TestEstimateQuality(t *testing.T) {
	tests := []struct {
		name       string
		in         QualityInput
		wantR      float64
		wantMOSMin float64
		wantMOSMax float64
	}{
		{name: "perfect", in: QualityInput{}, wantR: 93.2, wantMOSMin: 4.40, wantMOSMax: 4.42},
		{name: "lan call", in: QualityInput{RTTMs: 1, BufferMs: 40, PTimeMs: 20}, wantR: 93.2 - 0.024*60.5, wantMOSMin: 4.35, wantMOSMax: 4.40},
		// 5 % random loss: Ie,eff = 95*5/30.1 = 15.78.
		{name: "5% loss", in: QualityInput{LossPct: 5, BufferMs: 40, PTimeMs: 20}, wantR: 93.2 - 0.024*60 - 95*5/30.1, wantMOSMin: 3.7, wantMOSMax: 3.9},
		// d = 150 + 40 + 20 = 210 ms: past the 177.3 ms knee.
		{name: "satellite", in: QualityInput{RTTMs: 300, BufferMs: 40, PTimeMs: 20}, wantR: 93.2 - 0.024*210 - 0.11*(210-177.3), wantMOSMin: 4.0, wantMOSMax: 4.2},
		{name: "jitter without buffer depth", in: QualityInput{JitterMs: 30}, wantR: 93.2 - 0.024*60, wantMOSMin: 4.3, wantMOSMax: 4.4},
		{name: "all lost", in: QualityInput{LossPct: 100}, wantR: 93.2 - 95*100/125.1, wantMOSMin: 1.1, wantMOSMax: 1.3},
		{name: "clamped", in: QualityInput{LossPct: 400, RTTMs: 5000}, wantR: 0, wantMOSMin: 1, wantMOSMax: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := EstimateQuality(tt.in)
			if math.Abs(q.R-tt.wantR) > 0.01 {
				t.Errorf("R = %.3f, want %.3f", q.R, tt.wantR)
			}
			if q.MOS < tt.wantMOSMin || q.MOS > tt.wantMOSMax {
				t.Errorf("MOS = %.3f, want %.2f..%.2f", q.MOS, tt.wantMOSMin, tt.wantMOSMax)
			}
		})
	}
}

func TestMOSIsMonotonicInLoss(t *testing.T) {
	prev := 5.0
	for loss := 0.0; loss <= 100; loss += 0.5 {
		m := EstimateQuality(QualityInput{LossPct: loss, PTimeMs: 20}).MOS
		if m > prev {
			t.Fatalf("MOS rose from %.3f to %.3f at %.1f%% loss", prev, m, loss)
		}
		prev = m
	}
}
