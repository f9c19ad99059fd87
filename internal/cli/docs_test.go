package cli

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocsUseRealFlags: every `handover …` command shown in the docs names
// a real subcommand and only flags that command has, so the docs cannot
// drift from the CLI.
func TestDocsUseRealFlags(t *testing.T) {
	// Pages that show commands in code blocks; the others may name
	// commands only in their text (inline code, checked as well).
	withBlocks := []string{"README.md", "deploy-aws.md", "updates.md", "replicas.md", "logs.md", "releases.md"}
	for _, doc := range docPages(t) {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			cmds := handoverCommands(t, doc)
			if len(cmds) == 0 && slices.Contains(withBlocks, filepath.Base(doc)) {
				t.Fatalf("no handover commands found in %s", doc)
			}
			for _, args := range append(cmds, inlineCommands(t, doc)...) {
				checkCommand(t, args)
			}
		})
	}
}

// docPages are the README and every page of docs/.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages in docs/ (%v)", err)
	}
	return append([]string{"../../README.md"}, pages...)
}

// inlineCommands returns the argument lists of the `handover …` spans of
// inline code outside the code blocks of a markdown file.
func inlineCommands(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	inCode := false
	// Spans may wrap across lines: join each paragraph first.
	var para []string
	flush := func() {
		for _, m := range regexp.MustCompile("`handover ([^`]+)`").FindAllStringSubmatch(strings.Join(para, " "), -1) {
			var args []string
			for _, a := range strings.Fields(m[1]) {
				if a == "|" || a == "&&" || a == ";" || a == "&" || a == "…" || strings.HasPrefix(a, "#") || a == "--" {
					break
				}
				args = append(args, a)
			}
			if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
				out = append(out, args)
			}
		}
		para = para[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			flush()
			continue
		}
		if inCode {
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		para = append(para, line)
	}
	flush()
	return out
}

// TestDocsLinksStayInTheRepo: every relative link of the README and of
// docs/ names a file in this repository, so a fresh clone can open it.
func TestDocsLinksStayInTheRepo(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range docPages(t) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			abs, err := filepath.Abs(filepath.Join(filepath.Dir(doc), target))
			if err != nil {
				t.Fatal(err)
			}
			if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", filepath.Base(doc), m[1])
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links %s, which does not exist", filepath.Base(doc), m[1])
			}
		}
	}
}

// TestDesignInvariants: docs/design.md names eight invariants, each once,
// in kebab-case, for code comments to cite; and every path its table of
// where each part lives names exists.
func TestDesignInvariants(t *testing.T) {
	b, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	names := designInvariants(string(b))
	if len(names) != 8 {
		t.Errorf("docs/design.md names %d invariants, want 8: %v", len(names), names)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("invariant %s named twice", n)
		}
		seen[n] = true
	}
	// Comments and messages cite invariants by these names, never by a
	// number or by a design document outside the repository.
	cite := regexp.MustCompile(`[Ii]nvariant ([a-z]+(?:-[a-z]+)+)`)
	stale := regexp.MustCompile(`[Ii]nvariants? [0-9]|DESIGN\.md`)
	for _, dir := range []string{"../../cmd", "../../internal", "../../examples", "../../bench"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range cite.FindAllStringSubmatch(string(src), -1) {
				if !seen[m[1]] {
					t.Errorf("%s cites invariant %s, which docs/design.md does not name", path, m[1])
				}
			}
			if loc := stale.FindIndex(src); loc != nil && !strings.HasSuffix(path, "docs_test.go") {
				t.Errorf("%s cites %q: name the invariant from docs/design.md instead", path, src[loc[0]:loc[1]])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	_, where, ok := strings.Cut(string(b), "## Where each part lives")
	if !ok {
		t.Fatal("docs/design.md has no section on where each part lives")
	}
	where, _, _ = strings.Cut(where, "\n## ")
	paths := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(where, -1)
	if len(paths) < 10 {
		t.Fatalf("found only %d paths in the table of where each part lives", len(paths))
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join("../..", p[1])); err != nil {
			t.Errorf("docs/design.md places a part in %s, which does not exist", p[1])
		}
	}
}

// designInvariants returns the invariant names of design.md's table, in
// order: the rows whose first cell is a kebab-case name in code.
func designInvariants(doc string) []string {
	_, table, _ := strings.Cut(doc, "### The invariants")
	table, _, _ = strings.Cut(table, "\n#")
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z]+(?:-[a-z]+)+)` \\|").FindAllStringSubmatch(table, -1) {
		names = append(names, m[1])
	}
	return names
}

// handoverCommands returns the argument lists of the handover invocations
// in the fenced code blocks of a markdown file, continuation lines joined.
// In a block that shows a session ("$ " prompts), only the prompted lines
// are commands: the rest is output, which may well mention handover.
func handoverCommands(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	inCode, prompted, pending := false, false, ""
	lines := strings.Split(string(b), "\n")
	sc := bufio.NewScanner(bytes.NewReader(b))
	for i := 0; sc.Scan(); i++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			if inCode {
				prompted = false
				for _, l := range lines[i+1:] {
					if strings.HasPrefix(strings.TrimSpace(l), "```") {
						break
					}
					prompted = prompted || strings.HasPrefix(l, "$ ")
				}
			}
			continue
		}
		if !inCode {
			continue
		}
		if prompted && pending == "" && !strings.HasPrefix(line, "$ ") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		fields := strings.Fields(line)
		for i, f := range fields {
			if f != "handover" && !strings.HasSuffix(f, "/handover") {
				continue
			}
			if i > 0 && (fields[i-1] == "make" || fields[i-1] == "-o" || strings.HasPrefix(fields[i-1], "#")) {
				continue
			}
			var args []string
			for _, a := range fields[i+1:] {
				if a == "|" || a == "&&" || a == ";" || a == "&" || strings.HasPrefix(a, "#") || strings.HasPrefix(a, ">") || a == "--" {
					break
				}
				args = append(args, a)
			}
			if len(args) > 0 && !strings.HasPrefix(args[0], "-") && args[0] != "go" {
				out = append(out, args)
			}
			break
		}
	}
	return out
}

func checkCommand(t *testing.T, args []string) {
	t.Helper()
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		path = append(path, a)
	}
	cmd, rest, err := root.Find(path)
	if err != nil {
		t.Errorf("handover %s: %v", strings.Join(args, " "), err)
		return
	}
	if len(rest) > 0 && cmd.HasSubCommands() {
		t.Errorf("handover %s: %q is not a subcommand of %q", strings.Join(args, " "), rest[0], cmd.CommandPath())
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") || a == "--" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if cmd.Flags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil && name != "help" {
			t.Errorf("%s: the docs use --%s, which %q does not have", strings.Join(args, " "), name, cmd.CommandPath())
		}
	}
}
