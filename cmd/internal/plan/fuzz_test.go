package plan

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse: no input panics; a plan Parse accepts passes Validate; a
// rejection is a non-empty Problems whose every entry says something; and
// the same input always gives the same answer.
func FuzzParse(f *testing.F) {
	// The shipped plans are seeds as they are now; testdata/fuzz/FuzzParse
	// holds them as they were plus hand-written edge cases.
	for _, path := range []string{"../../../packaging/sipplan.toml", "../../../testdata/quickstart.toml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.toml")
		_, err2 := Parse(data, "fuzz.toml")
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Parse is not deterministic:\n%v\n---\n%v", err, err2)
		}
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %#v", err)
			}
			for _, pr := range ps {
				if pr.Msg == "" || pr.Line < 0 || pr.Source != "fuzz.toml" {
					t.Fatalf("bad problem %#v", pr)
				}
			}
			if p != nil {
				t.Fatal("both a plan and an error")
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted plan fails Validate: %v", err)
		}
		if len(p.Accounts) == 0 || len(p.Audio.Channels) == 0 {
			t.Fatalf("accepted plan without accounts or channels: %+v", p)
		}
	})
}
