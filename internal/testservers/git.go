package testservers

import (
	"os/exec"
	"strings"
	"testing"
)

// GitHead returns the commit checked out in the working directory's
// repository, for tests that check what go build stamps into a binary. It
// skips t outside a git checkout, and in a linked worktree (git worktree
// add), where go build stamps no VCS information.
func GitHead(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--path-format=absolute", "HEAD", "--git-dir", "--git-common-dir").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		t.Fatalf("git rev-parse: unexpected output %q", out)
	}
	if f[1] != f[2] {
		t.Skip("in a linked git worktree, where go build stamps no VCS information")
	}
	return f[0]
}
