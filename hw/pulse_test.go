package hw

import (
	"os"
	"slices"
	"testing"
)

func TestPulseServers(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		name     string
		explicit string
		env      map[string]string
		want     []pulseServer
	}{
		{name: "explicit unix", explicit: "unix:/run/user/990/pulse/native",
			want: []pulseServer{{"unix", "/run/user/990/pulse/native"}}},
		{name: "bare path", explicit: "/run/pulse/native", want: []pulseServer{{"unix", "/run/pulse/native"}}},
		{name: "tcp default port", explicit: "tcp:127.0.0.1", want: []pulseServer{{"tcp", "127.0.0.1:4713"}}},
		{name: "tcp6 with port", explicit: "tcp6:[::1]:4714", want: []pulseServer{{"tcp6", "[::1]:4714"}}},
		{name: "list and host filter", explicit: "{not-this-host}unix:/a {" + host + "}unix:/b junk unix:/c",
			want: []pulseServer{{"unix", "/b"}, {"unix", "/c"}}},
		{name: "env PULSE_SERVER", env: map[string]string{"PULSE_SERVER": "unix:/x"}, want: []pulseServer{{"unix", "/x"}}},
		{name: "explicit wins over env", explicit: "/y", env: map[string]string{"PULSE_SERVER": "unix:/x"}, want: []pulseServer{{"unix", "/y"}}},
		{name: "session then system socket", env: map[string]string{"PULSE_SERVER": "", "XDG_RUNTIME_DIR": "/run/user/990"},
			want: []pulseServer{{"unix", "/run/user/990/pulse/native"}, {"unix", "/run/pulse/native"}}},
		{name: "system socket only", env: map[string]string{"PULSE_SERVER": "", "XDG_RUNTIME_DIR": ""},
			want: []pulseServer{{"unix", "/run/pulse/native"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PULSE_SERVER", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if got := pulseServers(tc.explicit); !slices.Equal(got, tc.want) {
				t.Fatalf("pulseServers(%q) = %v, want %v", tc.explicit, got, tc.want)
			}
		})
	}
}
