package deploy_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkTree runs deploy/scripts/check-tree.sh in dir and returns its stderr and
// whether it passed.
func checkTree(t *testing.T, dir string) (string, bool) {
	t.Helper()
	script, err := filepath.Abs(path("deploy/scripts/check-tree.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("check-tree.sh: %v", err)
	}
	if stdout.Len() > 0 {
		t.Errorf("check-tree.sh wrote to stdout: %q", stdout.String())
	}
	return stderr.String(), err == nil
}

// gitEnv is the environment for git in a scratch repository: no user or
// system configuration.
func gitEnv() []string {
	return append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
}

// scratchRepo makes a git repository in a temporary directory with files
// (path -> content, mode) added to its index.
func scratchRepo(t *testing.T, files map[string]scratchFile) string {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = gitEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git("init", "-q", ".")
	for name, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.content, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "-A")
	return dir
}

type scratchFile struct {
	content []byte
	mode    os.FileMode
}

// TestCheckTree: the tree check of `make test` fails on a tracked ELF binary,
// a tracked executable that is not a script and a tracked file over 1 MiB,
// naming each and the commands that fix it, and passes on scripts, source,
// anything under testdata/ and on this repository itself.
func TestCheckTree(t *testing.T) {
	elf := make([]byte, 4096) // an ELF header's start, then zeros
	copy(elf, "\x7fELF\x02\x01\x01\x00")
	big := bytes.Repeat([]byte("x"), 2<<20)
	clean := map[string]scratchFile{
		"main.go":                     {[]byte("package main\n\nfunc main() {}\n"), 0o644},
		"run.sh":                      {[]byte("#!/usr/bin/env bash\necho ok\n"), 0o755},
		"small.json":                  {bytes.Repeat([]byte("y"), 1<<20), 0o644},
		"pkg/testdata/fixture.bin":    {elf, 0o755},
		"pkg/testdata/embeddings.raw": {big, 0o644},
		"testdata/big.json":           {big, 0o644},
	}

	t.Run("clean", func(t *testing.T) {
		msg, ok := checkTree(t, scratchRepo(t, clean))
		if !ok {
			t.Fatalf("check-tree.sh failed on a clean repository:\n%s", msg)
		}
		if msg != "" {
			t.Errorf("check-tree.sh passed but wrote %q", msg)
		}
	})

	t.Run("dirty", func(t *testing.T) {
		files := map[string]scratchFile{
			"simmatch":          {elf, 0o755},
			"pkg/catalog.test":  {elf, 0o644},
			"data/store.blk":    {big, 0o644},
			"tool":              {[]byte("echo not a script\n"), 0o755},
			"testdata.bin/fake": {elf, 0o644}, // not a testdata/ directory
		}
		for k, v := range clean {
			files[k] = v
		}
		dir := scratchRepo(t, files)
		// From a subdirectory too: the script checks the whole repository.
		for _, wd := range []string{dir, filepath.Join(dir, "pkg")} {
			msg, ok := checkTree(t, wd)
			if ok {
				t.Fatalf("check-tree.sh in %s passed; want a failure", wd)
			}
			for _, want := range []string{
				"simmatch: an ELF executable binary",
				"pkg/catalog.test: an ELF executable binary",
				"testdata.bin/fake: an ELF executable binary",
				"data/store.blk: 2097152 bytes, more than 1 MiB",
				"tool: has the executable bit but is not a script",
				"git rm --cached -- ",
				".gitignore",
				"git update-index --chmod=-x -- tool",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("check-tree.sh output lacks %q:\n%s", want, msg)
				}
			}
			for name := range clean {
				if strings.Contains(msg, name) {
					t.Errorf("check-tree.sh names %s, which is allowed:\n%s", name, msg)
				}
			}
		}

		// Untracking them (the fix it prints) makes it pass.
		cmd := exec.Command("git", "rm", "-q", "--cached", "--", "simmatch", "pkg/catalog.test", "data/store.blk", "tool", "testdata.bin/fake")
		cmd.Dir = dir
		cmd.Env = gitEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git rm --cached: %v\n%s", err, out)
		}
		if msg, ok := checkTree(t, dir); !ok {
			t.Fatalf("check-tree.sh still fails after git rm --cached:\n%s", msg)
		}
	})

	t.Run("repository", func(t *testing.T) {
		if msg, ok := checkTree(t, root); !ok {
			t.Fatalf("this repository fails its own tree check:\n%s", msg)
		}
	})
}
