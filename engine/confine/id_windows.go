package confine

import "io/fs"

// idOf: Windows reports no file identity in fs.FileInfo, so denied files
// are recognised by their cleaned path only.
func idOf(fs.FileInfo) (fileID, bool) { return fileID{}, false }
