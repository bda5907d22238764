package smb2

// Haven's addition to github.com/cloudsoda/go-smb2 (see HAVEN.md): what a
// backup's restore needs and the upstream API lacks. Upstream can set only
// the access and write times (Share.Chtimes) and the read-only attribute
// (Chmod); a restore also sets the creation time and the hidden, system,
// archive and not-content-indexed attributes, and sets a file's security
// descriptor, attributes and times through one handle opened once, so
// that a restored DACL that denies the restoring account the right to
// write attributes does not stop the times from being applied after it.

import (
	"os"
	"time"

	"github.com/cloudsoda/go-smb2/internal/smb2"
)

// Access rights (MS-SMB2 2.2.13.1.1) for Share.OpenMeta.
const (
	AccessReadAttributes  uint32 = smb2.FILE_READ_ATTRIBUTES
	AccessWriteAttributes uint32 = smb2.FILE_WRITE_ATTRIBUTES
	AccessDelete          uint32 = smb2.DELETE
	AccessReadControl     uint32 = smb2.READ_CONTROL
	AccessWriteDAC        uint32 = smb2.WRITE_DAC
	AccessWriteOwner      uint32 = smb2.WRITE_OWNER
	// AccessSystemSecurity is the right to read and write the SACL; the
	// server grants it only to holders of SeSecurityPrivilege.
	AccessSystemSecurity uint32 = smb2.ACCESS_SYSTEM_SECURITY
)

// OpenMeta opens the file or directory name itself, not following a final
// symbolic link or other reparse point, with the access rights in access
// (Access* constants), for reading or changing its metadata through the
// File's Stat, SecurityInfoRaw, SetSecurityInfoRaw and SetBasicInfo. The
// open shares read, write and delete, so it does not collide with other
// opens of the file.
func (fs *Share) OpenMeta(name string, access uint32) (*File, error) {
	name = normPath(name)

	if err := validatePath("open", name, false); err != nil {
		return nil, err
	}

	req := &smb2.CreateRequest{
		SecurityFlags:        0,
		RequestedOplockLevel: smb2.SMB2_OPLOCK_LEVEL_NONE,
		ImpersonationLevel:   smb2.Impersonation,
		SmbCreateFlags:       0,
		DesiredAccess:        access,
		FileAttributes:       0,
		ShareAccess:          smb2.FILE_SHARE_READ | smb2.FILE_SHARE_WRITE | smb2.FILE_SHARE_DELETE,
		CreateDisposition:    smb2.FILE_OPEN,
		CreateOptions:        smb2.FILE_OPEN_REPARSE_POINT,
		Mapping:              fs.mapping,
	}

	f, err := fs.createFile(name, req, false)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return f, nil
}

// SetBasicInfo sets the file's FileBasicInformation (MS-FSCC 2.4.7): its
// creation, last access, last write and change times, and its attributes
// (FILE_ATTRIBUTE_* bits). A zero time leaves that time unchanged, and so
// do attrs 0 for the attributes; to clear every attribute of a file, pass
// FILE_ATTRIBUTE_NORMAL (0x80). The file must be open with
// AccessWriteAttributes.
func (f *File) SetBasicInfo(creation, lastAccess, lastWrite, change time.Time, attrs uint32) error {
	ft := func(t time.Time) *smb2.Filetime {
		if t.IsZero() {
			return nil
		}
		return smb2.NsecToFiletime(t.UnixNano())
	}
	info := &smb2.SetInfoRequest{
		FileInfoClass:         smb2.FileBasicInformation,
		AdditionalInformation: 0,
		Input: &smb2.FileBasicInformationEncoder{
			CreationTime:   ft(creation),
			LastAccessTime: ft(lastAccess),
			LastWriteTime:  ft(lastWrite),
			ChangeTime:     ft(change),
			FileAttributes: attrs,
		},
	}
	if err := f.setInfo(info); err != nil {
		return &os.PathError{Op: "setbasicinfo", Path: f.name, Err: err}
	}
	return nil
}

// SetBasicInfo opens name with OpenMeta and AccessWriteAttributes and
// sets its FileBasicInformation as File.SetBasicInfo does.
func (fs *Share) SetBasicInfo(name string, creation, lastAccess, lastWrite, change time.Time, attrs uint32) error {
	f, err := fs.OpenMeta(name, AccessWriteAttributes)
	if err != nil {
		return err
	}
	err = f.SetBasicInfo(creation, lastAccess, lastWrite, change, attrs)
	if e := f.Close(); err == nil {
		err = e
	}
	return err
}
