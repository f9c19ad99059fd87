package cli

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsUseRealFlags: every `handover …` command shown in the docs names
// a real subcommand and only flags that command has, so the docs cannot
// drift from the CLI.
func TestDocsUseRealFlags(t *testing.T) {
	for _, doc := range []string{"../../docs/deploy-aws.md", "../../docs/updates.md", "../../README.md"} {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			cmds := handoverCommands(t, doc)
			if len(cmds) == 0 {
				t.Fatalf("no handover commands found in %s", doc)
			}
			for _, args := range cmds {
				checkCommand(t, args)
			}
		})
	}
}

// handoverCommands returns the argument lists of the handover invocations
// in the fenced code blocks of a markdown file, continuation lines joined.
func handoverCommands(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	inCode, pending := false, ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			continue
		}
		if !inCode {
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
