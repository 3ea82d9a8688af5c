// Command mangen converts the Markdown man pages in a directory (docs/man) to
// troff with go-md2man. Each output file is named by the page's title line,
// e.g. "telestra-sipd 8 ..." becomes telestra-sipd.8.
//
//	go run ./cmd/internal/mangen -out bin/man docs/man
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

func main() {
	out := flag.String("out", "bin/man", "directory the troff pages are written to")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mangen [-out DIR] SRCDIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	written, err := run(flag.Arg(0), *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
	for _, p := range written {
		fmt.Println(p)
	}
}

// run converts every *.md in src and returns the paths it wrote, sorted.
func run(src, out string) ([]string, error) {
	mds, err := filepath.Glob(filepath.Join(src, "*.md"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", src, err)
	}
	if len(mds) == 0 {
		return nil, fmt.Errorf("no *.md man pages in %s", src)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	from := map[string]string{} // output name -> source, to reject two pages with one title
	var written []string
	for _, md := range mds {
		doc, err := os.ReadFile(md)
		if err != nil {
			return nil, fmt.Errorf("read man page: %w", err)
		}
		p, err := convert(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", md, err)
		}
		if prev, dup := from[p.file]; dup {
			return nil, fmt.Errorf("%s and %s both have the title %s: give one another name or section", prev, md, p.file)
		}
		from[p.file] = md
		dst := filepath.Join(out, p.file)
		if err := os.WriteFile(dst, p.troff, 0o644); err != nil {
			return nil, fmt.Errorf("write man page: %w", err)
		}
		written = append(written, dst)
	}
	sort.Strings(written)
	return written, nil
}
