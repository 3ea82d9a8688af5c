package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a plan.
type Problem struct {
	Key    string // TOML key, e.g. "rtp-settings.port-min" or "accounts.account-1.user"; empty: the whole file
	Line   int    // 1-based line in the file; 0: not known (a default, or a plan built in Go)
	Msg    string // what is wrong and what is expected; never contains a password
	Source string // file name given to Parse; empty for Validate
}

// String formats the problem as "source:line: key: msg", leaving out the
// parts that are not known.
func (p Problem) String() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a plan. Parse and Validate return it
// as a *Problems; errors.As works with a Problems or a *Problems target.
type Problems []Problem

// Error lists one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// As lets errors.As fill a Problems target from a *Problems error and a
// *Problems target from a Problems error.
func (ps Problems) As(target any) bool {
	switch t := target.(type) {
	case *Problems:
		*t = append(Problems(nil), ps...)
		return true
	case **Problems:
		c := append(Problems(nil), ps...)
		*t = &c
		return true
	}
	return false
}

// ProblemLines is one line per problem of a Load or Parse error, each
// naming path when the problem has no source of its own; any other error
// is one line.
func ProblemLines(path string, err error) []string {
	var probs Problems
	if !errors.As(err, &probs) {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	out := make([]string, len(probs))
	for i, p := range probs {
		if p.Source == "" {
			p.Source = path
		}
		out[i] = p.String()
	}
	return out
}

// sortProblems orders problems by line, those without a line last, keeping
// the order they were found in otherwise.
func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}
