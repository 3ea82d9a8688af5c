package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
)

// page is one converted man page.
type page struct {
	name    string // e.g. "telestra-sipd"
	section string // e.g. "8", "5", "1", or "3p"
	file    string // name.section
	troff   []byte
}

// errNoTitle says how the title line must look.
var errNoTitle = errors.New(`no title: the first line must be "NAME SECTION \"DATE\" \"SOURCE\" \"MANUAL\"" underlined with ===, as go-md2man expects`)

// convert renders doc to troff and takes the file name from its title: the
// first heading's first two words, the page name and its section.
func convert(doc []byte) (page, error) {
	name, section, err := title(doc)
	if err != nil {
		return page{}, err
	}
	troff := troffChars.Replace(string(md2man.Render(doc)))
	return page{name: name, section: section, file: name + "." + section, troff: []byte(troff)}, nil
}

// troffChars turns the non-ASCII characters the pages use into troff's
// named glyphs: groff without preconv (and RHEL 8's man) reads UTF-8 bytes
// as invalid input.
var troffChars = strings.NewReplacer("→", `\(->`, "←", `\(<-`, "—", `\(em`, "–", `\(en`,
	"≤", `\(<=`, "≥", `\(>=`, "×", `\(mu`, "…", `...`)

// title returns name and section from the first level-1 heading, either
// setext ("title" then "====") or ATX ("# title").
func title(doc []byte) (name, section string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(doc))
	var prev string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		switch {
		case strings.HasPrefix(line, "# "):
			return nameSection(strings.TrimPrefix(line, "# "))
		case line != "" && strings.Trim(line, "=") == "" && strings.TrimSpace(prev) != "":
			return nameSection(prev)
		}
		if line != "" && !strings.HasPrefix(line, "<!--") {
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("read title: %w", err)
	}
	return "", "", errNoTitle
}

func nameSection(heading string) (string, string, error) {
	f := strings.Fields(heading)
	if len(f) < 2 {
		return "", "", errNoTitle
	}
	name, section := f[0], f[1]
	if section[0] < '1' || section[0] > '9' || strings.ContainsAny(name, `/\"`) {
		return "", "", fmt.Errorf("title %q: want a page name and a section number first: %w", heading, errNoTitle)
	}
	return name, section, nil
}
