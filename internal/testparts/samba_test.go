package testparts

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	smb2 "github.com/cloudsoda/go-smb2"
	"github.com/cloudsoda/sddl"
)

func sambaMount(t *testing.T, s *Samba, share string) *smb2.Share {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sess, err := s.dial(ctx)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Address, err)
	}
	t.Cleanup(func() { _ = sess.Logoff() })
	sh, err := sess.Mount(share)
	if err != nil {
		t.Fatalf("mount %s: %v", share, err)
	}
	return sh
}

// A file written through SMB lands in the share's directory, each share in
// its own; the inherit share's root carries the inheritable DACL and a file
// created under it inherits its ACEs.
func TestSambaSharesAndFiles(t *testing.T) {
	s := StartSamba(t)
	for _, share := range []string{SambaShareData, SambaShareOther} {
		sh := sambaMount(t, s, share)
		content := []byte("written to " + share)
		if err := sh.WriteFile("hello.txt", content, 0o644); err != nil {
			t.Fatalf("write to %s: %v", share, err)
		}
		got, err := os.ReadFile(filepath.Join(s.Dir(share), "hello.txt"))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s/hello.txt on disk = %q, %v; want %q", share, got, err, content)
		}
	}
	if s.Dir(SambaShareData) == s.Dir(SambaShareOther) {
		t.Fatalf("shares data and other share a directory")
	}

	sh := sambaMount(t, s, SambaShareInherit)
	root, err := sh.SecurityInfo("", smb2.OwnerSecurityInformation|smb2.DACLSecurityInformation)
	if err != nil {
		t.Fatalf("reading the inherit share's root SD: %v", err)
	}
	want, _ := sddl.FromString(s.InheritSDDL)
	if root.String() != want.String() {
		t.Fatalf("inherit share's root SD = %s, want %s", root, want)
	}
	if err := sh.WriteFile("child.txt", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	child, err := sh.SecurityInfo("child.txt", smb2.DACLSecurityInformation)
	if err != nil {
		t.Fatal(err)
	}
	wantChild, err := sddl.FromString("D:AI(A;ID;FA;;;" + s.UserSID + ")(A;ID;0x1200a9;;;WD)")
	if err != nil {
		t.Fatal(err)
	}
	if child.String() != wantChild.String() {
		t.Fatalf("child.txt's DACL is %s, want the ACEs inherited from %s: %s", child, s.InheritSDDL, wantChild)
	}
}

// Stop drops open connections and refuses new ones; Start brings the server
// back on the same port with the same account and files.
func TestSambaStopStart(t *testing.T) {
	s := StartSamba(t)
	sh := sambaMount(t, s, SambaShareData)
	if err := sh.WriteFile("kept.txt", []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := s.Address
	s.Stop()
	if _, err := sh.ReadFile("kept.txt"); err == nil {
		t.Fatalf("read through a connection to a stopped server succeeded")
	} else if !errors.As(err, new(*smb2.TransportError)) {
		t.Fatalf("read after Stop: %v, want a transport error", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if sess, err := s.dial(ctx); err == nil {
		_ = sess.Logoff()
		t.Fatalf("a stopped server accepted a session")
	}
	s.Stop() // stopping twice is fine

	s.Start()
	if s.Address != addr {
		t.Fatalf("restarted on %s, want %s", s.Address, addr)
	}
	sh = sambaMount(t, s, SambaShareData)
	got, err := sh.ReadFile("kept.txt")
	if err != nil || string(got) != "kept" {
		t.Fatalf("kept.txt after restart = %q, %v", got, err)
	}
}

// Reading a SACL needs SeSecurityPrivilege: refused before
// GrantPrivilege("SeSecurityPrivilege"), allowed (on a new session) after it.
func TestSambaGrantSecurityPrivilege(t *testing.T) {
	s := StartSamba(t)
	sh := sambaMount(t, s, SambaShareData)
	if err := sh.WriteFile("f", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	all := smb2.OwnerSecurityInformation | smb2.GroupSecurityInformation | smb2.DACLSecurityInformation | smb2.SACLSecurityInformation
	if _, err := sh.SecurityInfoRaw("f", all); err == nil {
		t.Fatalf("the account read a SACL without SeSecurityPrivilege")
	}
	s.GrantPrivilege("SeSecurityPrivilege")
	sh = sambaMount(t, s, SambaShareData)
	if _, err := sh.SecurityInfoRaw("f", all); err != nil {
		t.Fatalf("reading a SACL with SeSecurityPrivilege: %v", err)
	}
}
