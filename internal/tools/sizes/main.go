// Command sizes lists the files and functions of the repository that are
// too big to hold: non-test Go files over -file lines (default 450) and
// functions or methods over -func lines (default 80), longest first, with
// their counts. It reads the folders given (default "."), recursively,
// skipping testdata and hidden folders.
//
// A package may keep a long file or function on purpose, saying why in its
// package doc, in a paragraph that starts "Long on purpose:" and names it
// ("Runner.Run", "main", "config.go"). Such items are listed with
// "(reason in the package doc)" and do not count for -fail, which exits 1
// when anything else is listed.
//
//	go run ./internal/tools/sizes            # from the repository's root
//	go run ./internal/tools/sizes -func 60 pacer adapters
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type item struct {
	where     string
	lines     int
	explained bool // named in its package doc's "Long on purpose:" paragraph
}

func main() {
	fileMax := flag.Int("file", 450, "list non-test files over this many lines")
	funcMax := flag.Int("func", 80, "list functions over this many lines")
	fail := flag.Bool("fail", false, "exit 1 if anything is listed")
	flag.Parse()
	roots := flag.Args()
	if len(roots) == 0 {
		roots = []string{"."}
	}
	files, funcs, err := measure(roots, *fileMax, *funcMax)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sizes:", err)
		os.Exit(2)
	}
	report(os.Stdout, fmt.Sprintf("files over %d lines", *fileMax), files)
	report(os.Stdout, fmt.Sprintf("functions over %d lines", *funcMax), funcs)
	if *fail && len(unexplained(files))+len(unexplained(funcs)) > 0 {
		os.Exit(1)
	}
}

// measure walks roots and returns the non-test files longer than fileMax
// lines and the functions longer than funcMax lines, longest first.
func measure(roots []string, fileMax, funcMax int) (files, funcs []item, err error) {
	fset := token.NewFileSet()
	for _, root := range roots {
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				if path != root && (name == "testdata" || strings.HasPrefix(name, ".")) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			purpose := onPurpose(filepath.Dir(path))
			if n := fset.File(f.Pos()).LineCount(); n > fileMax {
				files = append(files, item{path, n, purpose[name]})
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
				if n > funcMax {
					fname := funcName(fn)
					funcs = append(funcs, item{fmt.Sprintf("%s:%d %s", path, fset.Position(fn.Pos()).Line, fname), n, purpose[fname]})
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	for _, s := range [][]item{files, funcs} {
		sort.Slice(s, func(i, j int) bool { return s[i].lines > s[j].lines })
	}
	return files, funcs, nil
}

// funcName returns "F" or "T.M" for a method of T or *T.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok {
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}

func report(w *os.File, title string, items []item) {
	fmt.Fprintf(w, "%s: %d (%d without a reason)\n", title, len(items), len(unexplained(items)))
	for _, it := range items {
		note := ""
		if it.explained {
			note = "  (reason in the package doc)"
		}
		fmt.Fprintf(w, "  %5d  %s%s\n", it.lines, it.where, note)
	}
}

func unexplained(items []item) []item {
	var out []item
	for _, it := range items {
		if !it.explained {
			out = append(out, it)
		}
	}
	return out
}

var purposes = map[string]map[string]bool{}

// onPurpose returns the names listed by the "Long on purpose:" paragraph
// of the package doc of the package in dir (words separated by commas,
// spaces or a final period, up to the paragraph's end).
func onPurpose(dir string) map[string]bool {
	if m, ok := purposes[dir]; ok {
		return m
	}
	m := map[string]bool{}
	purposes[dir] = m
	entries, _ := os.ReadDir(dir)
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil || f.Doc == nil {
			continue
		}
		for _, para := range strings.Split(f.Doc.Text(), "\n\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(para), "Long on purpose:")
			if !ok {
				continue
			}
			for _, w := range strings.FieldsFunc(rest, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == ';' }) {
				m[strings.TrimSuffix(strings.TrimSuffix(w, "."), ":")] = true
			}
		}
	}
	return m
}
