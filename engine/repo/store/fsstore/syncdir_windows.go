package fsstore

// syncDir does nothing on Windows: directory handles cannot be fsynced there,
// and NTFS journals renames itself.
func syncDir(string) error { return nil }
