package testparts

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Adopt gives what a test wrote straight into a share's directory (below
// Dir(share)) to the Samba account, as if the account had written it
// through SMB: as root, files the test made belong to root, which the
// account may not read. As any other user they are the account's already.
func (s *Samba) Adopt(share string) {
	s.t.Helper()
	root := s.Dir(share)
	info, err := os.Stat(root)
	if err != nil {
		s.t.Fatalf("samba: %v", err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if os.Geteuid() != 0 {
		return
	}
	err = filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(st.Uid), int(st.Gid))
	})
	if err != nil {
		s.t.Fatalf("samba: giving %s to the account: %v", root, err)
	}
}
