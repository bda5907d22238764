package agent

// ownerOf has no numeric owners to compare on Windows: every file is
// taken as the agent's own.
func ownerOf(string) (uid, gid int, err error) { return 0, 0, nil }

// chown does nothing on Windows, where the spool's access is the state
// directory's.
func chown(string, int, int) error { return nil }
