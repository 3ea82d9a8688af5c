package daemon

import (
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/hw"
	"github.com/telestra/telestra-sip/sip/media"
)

// TestPlanLimitsHoldBelow: a plan that -check accepts at the edge of a
// key's range is accepted by the layer the key is handed to, so a daemon
// never fails at start on a value the plan let through; just outside the
// range (refused) the plan itself says no.
func TestPlanLimitsHoldBelow(t *testing.T) {
	ms := func(n int) plan.Duration { return plan.Duration{Duration: time.Duration(n) * time.Millisecond} }
	tests := []struct {
		name    string
		edit    func(p *plan.Plan)
		refused bool // the plan must refuse it
	}{
		{name: "defaults", edit: func(*plan.Plan) {}},
		{name: "jitter-buffer min", edit: func(p *plan.Plan) { p.RTP.JitterBuffer = ms(20) }},
		{name: "jitter-buffer max", edit: func(p *plan.Plan) { p.RTP.JitterBuffer = ms(200) }},
		{name: "jitter-buffer above max", edit: func(p *plan.Plan) { p.RTP.JitterBuffer = ms(201) }, refused: true},
		{name: "jitter-buffer 1s", edit: func(p *plan.Plan) { p.RTP.JitterBuffer = ms(1000) }, refused: true},
		{name: "jitter-buffer max at 60ms ptime", edit: func(p *plan.Plan) { p.RTP.JitterBuffer, p.RTP.PTime = ms(200), ms(60) }},
		{name: "ptime min", edit: func(p *plan.Plan) { p.RTP.PTime = ms(10) }},
		{name: "ptime max", edit: func(p *plan.Plan) { p.RTP.PTime = ms(60) }},
		{name: "wideband", edit: func(p *plan.Plan) { p.RTP.Codecs = []string{"G722"} }},
		{name: "smallest port range", edit: func(p *plan.Plan) { p.RTP.PortMin, p.RTP.PortMax, p.Accounts[0].MaxCalls = 40000, 40001, 1 }},
		{name: "highest port range", edit: func(p *plan.Plan) { p.RTP.PortMin, p.RTP.PortMax, p.Accounts[0].MaxCalls = 65534, 65535, 1 }},
		{name: "api limits low", edit: func(p *plan.Plan) { p.TCP.MaxClients, p.TCP.MaxMessageBytes, p.TCP.EventHistory = 1, 1024, 1 }},
		{name: "api limits high", edit: func(p *plan.Plan) { p.TCP.MaxMessageBytes, p.TCP.EventHistory = 16<<20, 1<<16 }},
		{name: "lowest tone", edit: func(p *plan.Plan) { p.Audio.Channels[0].Loopback = "tone:1" }},
		{name: "highest tone", edit: func(p *plan.Plan) { p.Audio.Channels[0].Loopback = "tone:3999" }},
		{name: "highest wideband tone", edit: func(p *plan.Plan) {
			p.RTP.Codecs = []string{"G722", "PCMU"}
			p.Audio.Channels[0].Loopback = "tone:7999"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := plan.Default()
			p.Audio.Channels = []plan.Channel{{Name: "ch1", Loopback: plan.DefaultLoopback}}
			p.Accounts = []plan.Account{{Name: "a1", User: "3001", Channel: "ch1", MaxCalls: plan.DefaultMaxCalls}}
			tc.edit(p)
			err := p.Validate()
			switch {
			case tc.refused && err != nil:
				return
			case err != nil:
				t.Fatalf("the plan refuses the case: %v", err)
			}
			// The plan took it: what starts with it must take it too.
			eng, err := media.NewEngine(sipConfig(p).Media, discardLogger())
			if err != nil {
				t.Fatalf("-check passes a plan the media engine refuses at start: %v", err)
			}
			if err := eng.Close(); err != nil {
				t.Error(err)
			}
			for _, c := range p.Audio.Channels {
				ch, err := hw.Open(hwConfig(p), channelConfig(c), discardLogger())
				if err != nil {
					t.Fatalf("-check passes a channel the audio layer refuses at start: %v", err)
				}
				if err := ch.Close(); err != nil {
					t.Error(err)
				}
			}
			cfg := apiConfig(p)
			cfg.Address, cfg.Port = "127.0.0.1", 0 // the bind is not under test
			srv := api.NewServer(cfg, nil, discardLogger())
			if err := srv.Listen(); err != nil {
				t.Fatalf("-check passes API settings the API server refuses at start: %v", err)
			}
			if err := srv.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// A default the plan states for a layer it does not link is that layer's
// own default: the plan's documented value is the one in force.
func TestPlanDefaultsMatchBackends(t *testing.T) {
	if plan.DefaultPipeWireQuantum != hw.DefaultPipeWireQuantum {
		t.Errorf("plan.DefaultPipeWireQuantum %d, hw.DefaultPipeWireQuantum %d", plan.DefaultPipeWireQuantum, hw.DefaultPipeWireQuantum)
	}
	if got := hwConfig(plan.Default()).PipeWireQuantum; got != hw.DefaultPipeWireQuantum {
		t.Errorf("hwConfig(plan.Default()).PipeWireQuantum = %d, want %d", got, hw.DefaultPipeWireQuantum)
	}
}
