package smb2

// Haven's second addition to github.com/cloudsoda/go-smb2 (see HAVEN.md):
// what lets a restore write a file and give it its metadata through one
// handle, with no lookup by name before or after. A restore of many small
// files is bound by the server's work per request, so each request it
// saves is time saved: upstream's OpenFile offers no way to ask for the
// rights that set a security descriptor, and its Close throws away the
// attributes the server can return with the close.

import (
	"encoding/binary"
	"os"
	"runtime"
	"time"

	"github.com/cloudsoda/go-smb2/internal/smb2"
)

// CreateWith creates the regular file name for reading and writing, or
// truncates one that exists (FILE_OVERWRITE_IF), asking in the same
// request for the extra access rights in access (Access* constants:
// AccessWriteDAC and AccessWriteOwner to set the file's security
// descriptor through the handle, AccessSystemSecurity for its SACL). A
// directory of that name is refused by the server (FILE_NON_DIRECTORY_FILE,
// STATUS_FILE_IS_A_DIRECTORY), so the caller need not ask what it opened.
// A final symbolic link is not followed. attrs are the new file's
// attributes (0 for none). sd, when not nil, is a self-relative security
// descriptor for the new file, sent in an SMB2_CREATE_SD_BUFFER create
// context: a server applies it only to a file it creates, so with sd the
// file must not exist yet (FILE_CREATE), and one that does is refused
// with STATUS_OBJECT_NAME_COLLISION.
func (fs *Share) CreateWith(name string, access, attrs uint32, sd []byte) (*File, error) {
	name = normPath(name)

	if err := validatePath("open", name, false); err != nil {
		return nil, err
	}

	req := &smb2.CreateRequest{
		SecurityFlags:        0,
		RequestedOplockLevel: smb2.SMB2_OPLOCK_LEVEL_NONE,
		ImpersonationLevel:   smb2.Impersonation,
		SmbCreateFlags:       0,
		DesiredAccess:        smb2.GENERIC_READ | smb2.GENERIC_WRITE | access,
		FileAttributes:       attrs,
		ShareAccess:          smb2.FILE_SHARE_READ | smb2.FILE_SHARE_WRITE,
		CreateDisposition:    smb2.FILE_OVERWRITE_IF,
		CreateOptions:        smb2.FILE_SYNCHRONOUS_IO_NONALERT | smb2.FILE_NON_DIRECTORY_FILE,
		Mapping:              fs.mapping,
	}
	if attrs == 0 {
		req.FileAttributes = smb2.FILE_ATTRIBUTE_NORMAL
	}
	if sd != nil {
		req.CreateDisposition = smb2.FILE_CREATE
		req.Contexts = []smb2.Encoder{sdContext(sd)}
	}

	f, err := fs.createFile(name, req, false)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return f, nil
}

// MkdirWith creates the directory name (FILE_CREATE) and keeps it open
// with the access rights in access (Access* constants), sharing read,
// write and delete, so that the caller can give it its metadata later
// through the handle without opening it again. A file or directory of
// that name that exists already is refused with STATUS_OBJECT_NAME_COLLISION
// (os.ErrExist). sd, when not nil, is the new directory's security
// descriptor, as for CreateWith.
func (fs *Share) MkdirWith(name string, access uint32, sd []byte) (*File, error) {
	name = normPath(name)

	if err := validatePath("mkdir", name, false); err != nil {
		return nil, err
	}

	req := &smb2.CreateRequest{
		SecurityFlags:        0,
		RequestedOplockLevel: smb2.SMB2_OPLOCK_LEVEL_NONE,
		ImpersonationLevel:   smb2.Impersonation,
		SmbCreateFlags:       0,
		DesiredAccess:        smb2.FILE_READ_ATTRIBUTES | access,
		FileAttributes:       smb2.FILE_ATTRIBUTE_DIRECTORY,
		ShareAccess:          smb2.FILE_SHARE_READ | smb2.FILE_SHARE_WRITE | smb2.FILE_SHARE_DELETE,
		CreateDisposition:    smb2.FILE_CREATE,
		CreateOptions:        smb2.FILE_DIRECTORY_FILE,
		Mapping:              fs.mapping,
	}
	if sd != nil {
		req.Contexts = []smb2.Encoder{sdContext(sd)}
	}

	f, err := fs.createFile(name, req, false)
	if err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return f, nil
}

// sdContext is the SMB2_CREATE_SD_BUFFER create context ("SecD",
// MS-SMB2 2.2.13.2.1): a self-relative security descriptor that a server
// gives the file it creates instead of the inherited one.
type sdContext []byte

// The context's header is 16 bytes, its 4-byte name is padded to 8, and
// the descriptor follows at offset 24.
func (c sdContext) Size() int { return 24 + len(c) }

func (c sdContext) Encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:4], 0)    // Next: the last context
	binary.LittleEndian.PutUint16(b[4:6], 16)   // NameOffset
	binary.LittleEndian.PutUint16(b[6:8], 4)    // NameLength
	binary.LittleEndian.PutUint16(b[8:10], 0)   // Reserved
	binary.LittleEndian.PutUint16(b[10:12], 24) // DataOffset
	binary.LittleEndian.PutUint32(b[12:16], uint32(len(c)))
	copy(b[16:20], "SecD")
	clear(b[20:24])
	copy(b[24:], c)
}

// OpenedAs is what the server said of the file when it opened it (the
// CREATE response): its times, size and attributes, without a query.
// FileId is 0, as the response has none.
func (f *File) OpenedAs() FileStat { return *f.fileStat }

// CloseStat closes the file and returns what the server says of it as it
// closes (SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB): its times, size and
// attributes after every write and change made through the handle, for
// one request fewer than a query and a close. FileId is 0, as the
// response has none. A server that does not fill them in (it need not)
// answers zero times; the size is then 0 too, and the caller that relies
// on it must check the flag with CloseStat's ok.
func (f *File) CloseStat() (st FileStat, ok bool, err error) {
	if f == nil || f.fd == nil {
		return FileStat{}, false, &os.PathError{Op: "close", Path: f.name, Err: os.ErrInvalid}
	}
	fail := func(err error) (FileStat, bool, error) {
		return FileStat{}, false, &os.PathError{Op: "close", Path: f.name, Err: err}
	}

	req := &smb2.CloseRequest{Flags: smb2.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB}
	req.CreditCharge, _, err = f.fs.borrowCredits(0)
	if err != nil {
		return fail(err)
	}
	req.FileId = f.fd

	res, err := f.sendRecv(smb2.SMB2_CLOSE, req)
	if err != nil {
		return fail(err)
	}
	r := smb2.CloseResponseDecoder(res)
	if r.IsInvalid() {
		return fail(&InvalidResponseError{"broken close response format"})
	}
	f.fd = nil
	runtime.SetFinalizer(f, nil)

	if r.Flags()&smb2.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB == 0 {
		return FileStat{FileName: base(f.name)}, false, nil
	}
	return FileStat{
		CreationTime:   time.Unix(0, r.CreationTime().Nanoseconds()),
		LastAccessTime: time.Unix(0, r.LastAccessTime().Nanoseconds()),
		LastWriteTime:  time.Unix(0, r.LastWriteTime().Nanoseconds()),
		ChangeTime:     time.Unix(0, r.ChangeTime().Nanoseconds()),
		EndOfFile:      r.EndofFile(),
		AllocationSize: r.AllocationSize(),
		FileAttributes: r.FileAttributes(),
		FileName:       base(f.name),
	}, true, nil
}
