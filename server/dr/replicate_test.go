package dr

import "testing"

// TestClientToken: the same disk point gets the same token on every
// attempt (so a rerun continues the snapshot a dead attempt started),
// another token after each snapshot AWS failed, and another for another
// plan, VM, disk or point; each within StartSnapshot's 64 characters.
func TestClientToken(t *testing.T) {
	base := clientToken("plan", "vm", 2000, "point", 0)
	if again := clientToken("plan", "vm", 2000, "point", 0); again != base {
		t.Fatalf("the token changed between attempts: %s, %s", base, again)
	}
	seen := map[string]string{base: "base"}
	for name, tok := range map[string]string{
		"failed once": clientToken("plan", "vm", 2000, "point", 1), "failed twice": clientToken("plan", "vm", 2000, "point", 2),
		"other plan": clientToken("plan2", "vm", 2000, "point", 0), "other VM": clientToken("plan", "vm2", 2000, "point", 0),
		"other disk": clientToken("plan", "vm", 2001, "point", 0), "other point": clientToken("plan", "vm", 2000, "point2", 0),
	} {
		if len(tok) == 0 || len(tok) > 64 {
			t.Errorf("%s: token %q is not 1 to 64 characters", name, tok)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("%s: same token as %s", name, prev)
		}
		if prev, ok := seen[tok]; ok {
			t.Errorf("%s has the token of %s", name, prev)
		}
		seen[tok] = name
	}
}
