// Package smb implements nas.Share over SMB2/3, for a NAS proxy that reads
// and restores Windows and Samba shares without mounting them.
//
// It speaks SMB through github.com/cloudsoda/go-smb2, the maintained fork
// of hirochachacha/go-smb2: SMB 2.0.2 to 3.1.1, signing and encryption,
// NTLMv2 and Kerberos, raw security descriptors (owner, group, DACL and
// SACL) and security queries compounded with the directory listing. It is
// also the only SMB client library the module proxy serves us. Haven uses
// its own copy (third_party/go-smb2, see HAVEN.md there), which adds what
// a restore needs and upstream lacks: opening a file or directory itself,
// not following a reparse point, with chosen access rights (OpenMeta);
// setting FileBasicInformation (SetBasicInfo: creation, access and write
// times and the DOS attributes; upstream sets only access and write times
// and the read-only bit); and creating a file or directory with the rights
// to give it its metadata through the same handle, and closing it with
// its size reported (CreateWith, MkdirWith, CloseStat), so that a restore
// spends as few requests per entry as it can (CreateMeta, MkdirOpen).
//
// What the server keeps is the server's: Samba (4.17 and later alike)
// stores only the read-only, hidden, system and archive attributes
// (SAMBA_ATTRIBUTES_MASK) and drops not-content-indexed; Windows keeps
// them all.
package smb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	smb2 "github.com/cloudsoda/go-smb2"
	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/havenbackup/terraform-provider-haven/engine/nas"
)

// Config says which share to connect to and as whom.
type Config struct {
	// Address is the server, "host" or "host:port" (port 445 by default).
	Address string
	// Share is the share's name.
	Share string
	// User and Domain name the account; Domain may be empty for a
	// server's local account.
	User, Domain string
	// Password authenticates with NTLMv2. Either it or Keytab is needed.
	Password string
	// Keytab is a Kerberos keytab (the MIT file format, as ktutil or
	// `samba-tool domain exportkeytab` writes it) holding User's key; with
	// it the session is authenticated with Kerberos instead of a password.
	Keytab []byte
	// Realm is the Kerberos realm, by default Domain in upper case.
	Realm string
	// KDCs are the realm's key distribution centres, "host" or
	// "host:port"; when empty they are looked up in DNS (SRV records).
	KDCs []string
	// SPN is the server's service principal, by default "cifs/" and the
	// host of Address.
	SPN string
}

// Access rights and security information for reading a descriptor, with
// and without its SACL.
const (
	sdInfo     = smb2.OwnerSecurityInformation | smb2.GroupSecurityInformation | smb2.DACLSecurityInformation
	sdInfoSACL = sdInfo | smb2.SACLSecurityInformation
)

// FILE_ATTRIBUTE_* bits beyond those of package nas.
const (
	attrReparsePoint = 0x400
	// ioReparseTagSymlink marks a symbolic link's reparse point.
	ioReparseTagSymlink = 0xA000000C
)

// Descriptor control bits (MS-DTYP 2.4.6).
const (
	seDACLPresent          = 0x0004
	seSACLPresent          = 0x0010
	seDACLAutoInheritReq   = 0x0100
	seSACLAutoInheritReq   = 0x0200
	seDACLAutoInherited    = 0x0400
	seSACLAutoInherited    = 0x0800
	sdHeaderLen            = 20
	statusPrivilegeNotHeld = 0xC0000061
)

// share is a connected share: one SMB session with one tree connected.
// go-smb2's sessions multiplex concurrent requests over their connection,
// and every call here takes its own view of the tree (Share.WithContext),
// so a share is safe for concurrent use.
type share struct {
	sess   *smb2.Session
	tree   *smb2.Share
	target string // "user@address/share", for errors

	// Directory listings go through a session and connection of their
	// own, one at a time (listMu). go-smb2 sends ReadDirPlus's security
	// queries as compounded requests, and while one is in flight, other
	// requests on the same connection get STATUS_INVALID_PARAMETER from
	// Samba 4.17 (measured: 4 of 144 opens beside a listing loop; none
	// with the listing on its own connection, and none with listings
	// alone); the fault lies in how the library accounts the compound's
	// credits. A capture lists on one goroutine while its readers open
	// files on others, so it would lose files to the fault.
	listMu   sync.Mutex
	listSess *smb2.Session
	listTree *smb2.Share

	// Close ends the sessions once; a second call answers the same.
	closeOnce sync.Once
	closeErr  error

	sacl       bool
	saclReason string

	// account is the SID the server gives the account, learned from the
	// owner of the first directory a restore makes (surely new, so surely
	// the account's; a file it creates may have been there); secdOff is
	// set once the server refuses a descriptor at creation. See
	// createSD.
	accountOnce sync.Once
	account     atomic.Pointer[[]byte]
	secdOff     atomic.Bool
}

// Rights a restore still needs after creating an entry with its
// descriptor: to write a file and set its attributes and times
// (FILE_WRITE_DATA, FILE_WRITE_EA, FILE_WRITE_ATTRIBUTES), and to create a
// directory's entries and set its own (FILE_ADD_FILE,
// FILE_ADD_SUBDIRECTORY, FILE_WRITE_EA, FILE_TRAVERSE,
// FILE_WRITE_ATTRIBUTES).
const (
	fileRightsAfterCreate = 0x0112
	dirRightsAfterCreate  = 0x0136
)

// createSD is the descriptor to create an entry with, set (set.sd without
// the SACL the account may not set), or nil where the descriptor must
// wait until the entry is written: while the account is not known yet,
// after the server refused a descriptor at creation, and where the
// descriptor might deny the account what it still has to do (nas.Grants
// with need). Created with its descriptor, an entry is spared a request,
// and the server the inherited descriptor it would make and replace.
func (s *share) createSD(set metaSet, need uint32) []byte {
	if set.info&smb2.DACLSecurityInformation == 0 || s.secdOff.Load() {
		return nil
	}
	account := s.account.Load()
	if account == nil || !nas.Grants(set.sd, *account, need) {
		return nil
	}
	if set.info&smb2.SACLSecurityInformation != 0 {
		return set.sd
	}
	sd, err := nas.WithoutSACL(set.sd)
	if err != nil {
		return nil
	}
	return sd
}

// learnAccount learns the account's SID, once, from the owner of f, a
// directory the account has just created.
func (s *share) learnAccount(f *smb2.File) {
	s.accountOnce.Do(func() {
		sd, err := f.SecurityInfoRaw(smb2.OwnerSecurityInformation)
		if err != nil {
			return
		}
		if owner, err := nas.OwnerOf(sd); err == nil && owner != nil {
			owner = append([]byte(nil), owner...)
			s.account.Store(&owner)
		}
	})
}

// Dial connects to the share c names, authenticates, and checks once
// whether the account may read SACLs (see nas.Share.SACL). Errors never
// include the password.
func Dial(ctx context.Context, c Config) (nas.Share, error) {
	host, addr, err := address(c.Address)
	if err != nil {
		return nil, err
	}
	if c.Share == "" || strings.ContainsAny(c.Share, `\/`) {
		return nil, fmt.Errorf("smb: share name %q is not a share's name", c.Share)
	}
	if c.User == "" {
		return nil, errors.New("smb: no user to connect as")
	}
	who := c.User
	if c.Domain != "" {
		who = c.Domain + `\` + c.User
	}
	target := who + "@" + addr + "/" + c.Share

	var initiator smb2.Initiator
	switch {
	case len(c.Keytab) > 0:
		krb, spn, err := kerberos(c, host)
		if err != nil {
			return nil, fmt.Errorf("smb: %s: %w", target, err)
		}
		defer krb.Destroy()
		initiator = &smb2.Krb5Initiator{Client: krb, TargetSPN: spn}
	case c.Password != "":
		initiator = &smb2.NTLMInitiator{User: c.User, Password: c.Password, Domain: c.Domain}
	default:
		return nil, fmt.Errorf("smb: %s: neither a password nor a Kerberos keytab to authenticate with", target)
	}

	d := &smb2.Dialer{Initiator: initiator}
	connect := func() (*smb2.Session, *smb2.Share, error) {
		sess, err := d.Dial(ctx, addr)
		if err != nil {
			return nil, nil, wrap("connect to", target, err)
		}
		tree, err := sess.WithContext(ctx).Mount(`\\` + host + `\` + c.Share)
		if err != nil {
			_ = sess.Logoff()
			return nil, nil, wrap("connect to", target, err)
		}
		return sess, tree, nil
	}
	s := &share{target: target}
	if s.sess, s.tree, err = connect(); err != nil {
		return nil, err
	}
	if s.listSess, s.listTree, err = connect(); err != nil {
		_ = s.tree.Umount()
		_ = s.sess.Logoff()
		return nil, err
	}
	if err := s.probeSACL(ctx, c.User); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// address returns the host of a "host[:port]" address and the address with
// its port.
func address(a string) (host, hostport string, err error) {
	if a == "" {
		return "", "", errors.New("smb: no server address")
	}
	if h, p, err := net.SplitHostPort(a); err == nil {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil || h == "" {
			return "", "", fmt.Errorf("smb: server address %q is not host:port", a)
		}
		return h, a, nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
	if strings.ContainsAny(h, `/\ `) {
		return "", "", fmt.Errorf("smb: server address %q is not host:port", a)
	}
	return h, net.JoinHostPort(h, "445"), nil
}

// kerberos logs in with c's keytab and returns the client and the
// server's service principal.
func kerberos(c Config, host string) (*client.Client, string, error) {
	realm := c.Realm
	if realm == "" {
		realm = strings.ToUpper(c.Domain)
	}
	if realm == "" {
		return nil, "", errors.New("a Kerberos keytab needs a realm (or a domain)")
	}
	for _, s := range append([]string{realm}, c.KDCs...) {
		if strings.ContainsAny(s, "{}=\n\r\t ") {
			return nil, "", fmt.Errorf("Kerberos realm or KDC %q is not a name", s)
		}
	}
	kt := keytab.New()
	if err := kt.Unmarshal(c.Keytab); err != nil {
		return nil, "", fmt.Errorf("reading the Kerberos keytab: %w", err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "[libdefaults]\n  default_realm = %s\n  dns_lookup_kdc = %t\n  dns_lookup_realm = false\n  udp_preference_limit = 1\n[realms]\n  %s = {\n", realm, len(c.KDCs) == 0, realm)
	for _, k := range c.KDCs {
		fmt.Fprintf(&conf, "    kdc = %s\n", k)
	}
	conf.WriteString("  }\n")
	cfg, err := krbconfig.NewFromString(conf.String())
	if err != nil {
		return nil, "", fmt.Errorf("Kerberos configuration: %w", err)
	}
	krb := client.NewWithKeytab(c.User, realm, kt, cfg, client.DisablePAFXFAST(true))
	if err := krb.Login(); err != nil {
		return nil, "", fmt.Errorf("Kerberos login as %s@%s: %w", c.User, realm, err)
	}
	spn := c.SPN
	if spn == "" {
		spn = "cifs/" + host
	}
	return krb, spn, nil
}

// probeSACL reads the root's descriptor with its SACL: a server refuses
// that to an account without SeSecurityPrivilege.
func (s *share) probeSACL(ctx context.Context, user string) error {
	_, err := s.tree.WithContext(ctx).SecurityInfoRaw("", sdInfoSACL)
	switch {
	case err == nil:
		s.sacl = true
		return nil
	case isConnectionLost(err) || ctx.Err() != nil:
		return wrap("read the security descriptor of", s.target, err)
	}
	var re *smb2.ResponseError
	if errors.As(err, &re) && re.Code == statusPrivilegeNotHeld || errors.Is(err, fs.ErrPermission) {
		s.saclReason = fmt.Sprintf("the account %s lacks SeSecurityPrivilege: SACLs are not captured; grant it with `net sam rights grant %s SeSecurityPrivilege` on Samba, or 'Manage auditing and security log' on Windows", user, user)
	} else {
		s.saclReason = fmt.Sprintf("the server refused to read the share root's SACL (%v): SACLs are not captured", cause(err))
	}
	return nil
}

func (s *share) Protocol() string { return nas.SMB }

func (s *share) SACL() (bool, string) { return s.sacl, s.saclReason }

func (s *share) tc(ctx context.Context) *smb2.Share { return s.tree.WithContext(ctx) }

// name turns a share-relative slash path into go-smb2's form.
func name(p string) (string, error) {
	if p == "" || p == "." {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return "", fmt.Errorf("smb: path %q is not relative to the share with slashes", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("smb: path %q is not clean", p)
		}
	}
	return strings.ReplaceAll(p, "/", `\`), nil
}

// ReadDir lists dir with each entry's security descriptor.
//
// The descriptors come with the listing, queried by go-smb2's ReadDirPlus
// in compounded CREATE+QUERY_INFO+CLOSE requests (one round trip for a
// batch of up to ~40 entries, as credits allow). That is faster than a
// query per entry (open, query, close: three round trips each).
// BenchmarkReadDir, a directory of 1000 files on the test Samba 4.17
// (loopback, client and server sharing 2 cores):
//
//	listing alone, no descriptors:             40 ms
//	compounded (ReadDirPlus), kept:           380 ms
//	a query per entry:                        680 ms
//	a query per entry, 8 goroutines at once:  480 ms
//
// Samba's work per open (reading user.NTACL and checking it against the
// POSIX ACL) is most of the cost either way.
func (s *share) ReadDir(ctx context.Context, dir string) ([]nas.Info, error) {
	n, err := name(dir)
	if err != nil {
		return nil, err
	}
	info := sdInfo
	if s.sacl {
		info = sdInfoSACL
	}
	s.listMu.Lock()
	defer s.listMu.Unlock()
	tc := s.listTree.WithContext(ctx)
	entries, err := tc.ReadDirPlus(n, info)
	if err != nil {
		return nil, wrap("list", dir, err)
	}
	return s.infos(tc, dir, n, entries, info)
}

// infos describes the entries of dir (n in go-smb2's form) that
// ReadDirPlus returned. An entry whose descriptor the compounded query
// could not read (a symbolic link, which the query's open does not follow
// but stops at; an entry that changed in between) has it read on its own,
// and is left out if it is gone by then. (go-smb2 sets an entry's Err also
// when package sddl cannot parse a descriptor it did read; the descriptor
// is kept as read then.)
func (s *share) infos(tc *smb2.Share, dir, n string, entries []smb2.DirEntryPlus, info smb2.SecurityInformationRequestFlags) ([]nas.Info, error) {
	out := make([]nas.Info, 0, len(entries))
	for _, e := range entries {
		st, ok := e.FileInfo.Sys().(*smb2.FileStat)
		if !ok {
			return nil, fmt.Errorf("smb: list %s: entry %s without SMB metadata", dir, e.Name())
		}
		i := infoOf(st)
		i.SD = e.RawSecurityDescriptor
		if i.SD == nil {
			var err error
			if i.SD, err = s.descriptor(tc, joinName(n, e.Name()), info); isNotFound(err) {
				continue
			} else if err != nil {
				// One entry the account may not describe does not hide
				// its directory: it is listed, and the capture warns.
				err = wrap("read the security descriptor of", path.Join(dir, e.Name()), err)
				if isConnectionLost(err) {
					return nil, err
				}
				i.Err = err
			}
		}
		if i.Type == nas.TypeSymlink {
			var err error
			if i.Target, err = tc.Readlink(joinName(n, e.Name())); err != nil {
				err = wrap("read the link", path.Join(dir, e.Name()), err)
				if isConnectionLost(err) {
					return nil, err
				}
				i.Err = errors.Join(i.Err, err)
			}
		}
		out = append(out, i)
	}
	return out, nil
}

// descriptor reads the descriptor of n itself (not following a link).
func (s *share) descriptor(tc *smb2.Share, n string, info smb2.SecurityInformationRequestFlags) ([]byte, error) {
	access := smb2.AccessReadControl
	if info&smb2.SACLSecurityInformation != 0 {
		access |= smb2.AccessSystemSecurity
	}
	f, err := tc.OpenMeta(n, access)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.SecurityInfoRaw(info)
}

func joinName(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + `\` + base
}

// infoOf describes an entry from its SMB metadata (no descriptor).
func infoOf(st *smb2.FileStat) nas.Info {
	i := nas.Info{
		Name:    st.FileName,
		Type:    nas.TypeFile,
		Size:    st.EndOfFile,
		BtimeNs: st.CreationTime.UnixNano(),
		MtimeNs: st.LastWriteTime.UnixNano(),
		CtimeNs: st.ChangeTime.UnixNano(),
		AtimeNs: st.LastAccessTime.UnixNano(),
		FileID:  st.FileId,
		Attrs:   st.FileAttributes,
	}
	switch {
	case st.FileAttributes&attrReparsePoint != 0 && st.ReparsePointTag == ioReparseTagSymlink:
		i.Type, i.Size = nas.TypeSymlink, 0
	case st.FileAttributes&nas.AttrDirectory != 0:
		i.Type, i.Size = nas.TypeDir, 0
	}
	return i
}

// Stat describes p, with its security descriptor, without following a
// final symbolic link.
func (s *share) Stat(ctx context.Context, p string) (nas.Info, error) {
	n, err := name(p)
	if err != nil {
		return nas.Info{}, err
	}
	access, info := smb2.AccessReadAttributes|smb2.AccessReadControl, sdInfo
	if s.sacl {
		access, info = access|smb2.AccessSystemSecurity, sdInfoSACL
	}
	tc := s.tc(ctx)
	f, err := tc.OpenMeta(n, access)
	if err != nil {
		return nas.Info{}, wrap("stat", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nas.Info{}, wrap("stat", p, err)
	}
	st := fi.(*smb2.FileStat)
	i := infoOf(st)
	i.Name = path.Base(p)
	if p == "" {
		i.Name = ""
	}
	if i.SD, err = f.SecurityInfoRaw(info); err != nil {
		return nas.Info{}, wrap("read the security descriptor of", p, err)
	}
	if st.FileAttributes&attrReparsePoint != 0 {
		// FileAllInformation has no reparse tag: a link is what reads as
		// one.
		if target, err := tc.Readlink(n); err == nil {
			i.Type, i.Size, i.Target = nas.TypeSymlink, 0, target
		} else if isConnectionLost(err) {
			return nas.Info{}, wrap("stat", p, err)
		}
	}
	return i, nil
}

// Open opens a regular file for reading. The file's reads use ctx: they
// fail once it is done.
func (s *share) Open(ctx context.Context, p string) (nas.File, error) {
	return s.open(ctx, "open", p, os.O_RDONLY)
}

// Create creates p for writing, truncating a file that exists (one that is
// read-only is made writable first).
func (s *share) Create(ctx context.Context, p string) (nas.File, error) {
	return s.open(ctx, "create", p, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
}

func (s *share) open(ctx context.Context, op, p string, flag int) (nas.File, error) {
	f, err := s.openHandle(ctx, op, p, flag, 0)
	if err != nil {
		return nil, err
	}
	return &file{f: f, path: p}, nil
}

// openHandle opens p for reading (flag os.O_RDONLY) or creates it for
// writing, truncating a file that exists (one that is read-only is made
// writable first), with the extra access rights in access. It is refused
// for a directory, which the server's answer to the open tells apart, so
// no query is needed.
func (s *share) openHandle(ctx context.Context, op, p string, flag int, access uint32) (*smb2.File, error) {
	n, err := name(p)
	if err != nil {
		return nil, err
	}
	if n == "" {
		return nil, fmt.Errorf("smb: %s the share's root: it is a directory", op)
	}
	tc := s.tc(ctx)
	openIt := func() (*smb2.File, error) {
		if flag == os.O_RDONLY {
			return tc.OpenFile(n, flag, 0)
		}
		return tc.CreateWith(n, access, 0, nil)
	}
	f, err := openIt()
	if err != nil && flag != os.O_RDONLY && errors.Is(err, fs.ErrPermission) {
		if cleared, cerr := s.clearReadOnly(tc, n); cerr != nil {
			return nil, wrap(op, p, cerr)
		} else if cleared {
			f, err = openIt()
		}
	}
	if isStatus(err, statusFileIsADirectory) {
		return nil, fmt.Errorf("smb: %s %s: it is a directory", op, p)
	}
	if err != nil {
		return nil, wrap(op, p, err)
	}
	if f.OpenedAs().FileAttributes&nas.AttrDirectory != 0 {
		_ = f.Close()
		return nil, fmt.Errorf("smb: %s %s: it is a directory", op, p)
	}
	return f, nil
}

// clearReadOnly makes the file n writable if it is read-only, and says
// whether it was.
func (s *share) clearReadOnly(tc *smb2.Share, n string) (bool, error) {
	f, err := tc.OpenMeta(n, smb2.AccessReadAttributes|smb2.AccessWriteAttributes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	attrs := fi.(*smb2.FileStat).FileAttributes
	if attrs&nas.AttrReadOnly == 0 {
		return false, nil
	}
	attrs &^= nas.AttrReadOnly
	if attrs == 0 {
		attrs = nas.AttrNormal
	}
	return true, f.SetBasicInfo(time.Time{}, time.Time{}, time.Time{}, time.Time{}, attrs)
}

// Mkdir creates the directory p; one that exists is no error.
func (s *share) Mkdir(ctx context.Context, p string) error {
	n, err := name(p)
	if err != nil {
		return err
	}
	if n == "" {
		return nil
	}
	err = s.tc(ctx).Mkdir(n, 0o777)
	if errors.Is(err, fs.ErrExist) {
		fi, serr := s.tc(ctx).Lstat(n)
		if serr == nil && fi.IsDir() {
			return nil
		}
		if serr == nil {
			return fmt.Errorf("smb: mkdir %s: a file of that name exists", p)
		}
		return wrap("mkdir", p, serr)
	}
	return wrap("mkdir", p, err)
}

// MkdirOpen creates the directory p and keeps it open with the rights to
// give it its metadata (nas.DirMaker), with the descriptor sd already
// where createSD allows; a directory of that name that exists already is
// no error and no handle.
func (s *share) MkdirOpen(ctx context.Context, p string, sd []byte) (nas.MetaDir, error) {
	n, err := name(p)
	if err != nil {
		return nil, err
	}
	if n == "" {
		return nil, nil
	}
	access := smb2.AccessReadControl | smb2.AccessWriteAttributes | smb2.AccessWriteDAC | smb2.AccessWriteOwner
	if s.sacl {
		access |= smb2.AccessSystemSecurity
	}
	var create []byte
	if sd != nil {
		if set, err := s.metaToSet(p, nas.Meta{SD: sd}); err == nil {
			create = s.createSD(set, dirRightsAfterCreate)
		}
	}
	tc := s.tc(ctx)
	f, err := tc.MkdirWith(n, access, create)
	if err != nil && create != nil && !errors.Is(err, fs.ErrExist) && !isConnectionLost(err) && ctx.Err() == nil {
		s.secdOff.Store(true) // as in CreateMeta
		create = nil
		f, err = tc.MkdirWith(n, access, nil)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil, s.Mkdir(ctx, p)
	}
	if err != nil {
		return nil, wrap("mkdir", p, err)
	}
	s.learnAccount(f)
	return &metaDir{s: s, f: f, path: p, sdAtCreate: create != nil}, nil
}

// metaDir is a directory made and kept open by MkdirOpen, sdAtCreate when
// with its descriptor.
type metaDir struct {
	s          *share
	f          *smb2.File
	path       string
	sdAtCreate bool
}

// SetMetaClose applies m through the handle as SetMeta would (all but the
// descriptor, if the directory was made with it), and closes it.
func (d *metaDir) SetMetaClose(m nas.Meta) error {
	set, err := d.s.metaToSet(d.path, m)
	if err != nil {
		_ = d.f.Close()
		return err
	}
	if d.sdAtCreate {
		set = set.withoutSD()
	}
	return set.applyClose(d.f, d.path)
}

func (d *metaDir) Close() error { return wrap("close", d.path, d.f.Close()) }

// Symlink makes p a symbolic link to target, which Windows servers (with
// the right to create links) allow and Samba refuses.
func (s *share) Symlink(ctx context.Context, target, p string) error {
	n, err := name(p)
	if err != nil {
		return err
	}
	if err := s.tc(ctx).Symlink(target, n); err != nil {
		if isConnectionLost(err) {
			return wrap("symlink", p, err)
		}
		return fmt.Errorf("smb: the server refused to make %s a symbolic link to %s (Samba creates none over SMB2; Windows needs the right to create links): %w", p, target, cause(err))
	}
	return nil
}

// Remove removes p (a file, even a read-only one, a link, or an empty
// directory); one that does not exist is no error.
func (s *share) Remove(ctx context.Context, p string) error {
	n, err := name(p)
	if err != nil {
		return err
	}
	if n == "" {
		return errors.New("smb: will not remove the share's root")
	}
	err = s.tc(ctx).Remove(n)
	if errors.Is(err, fs.ErrNotExist) || isNotFound(err) {
		return nil
	}
	return wrap("remove", p, err)
}

// Rename moves from onto to, replacing a file at to (a read-only one
// too).
func (s *share) Rename(ctx context.Context, from, to string) error {
	f, err := name(from)
	if err != nil {
		return err
	}
	t, err := name(to)
	if err != nil {
		return err
	}
	tc := s.tc(ctx)
	err = tc.Rename(f, t)
	if errors.Is(err, fs.ErrPermission) {
		if cleared, cerr := s.clearReadOnly(tc, t); cerr != nil {
			return wrap("rename "+from+" to", to, cerr)
		} else if cleared {
			err = tc.Rename(f, t)
		}
	}
	return wrap("rename "+from+" to", to, err)
}

// SetMeta applies m to p through one handle, opened once with every right
// it needs.
//
// FileBasicInformation goes first: the attributes in nas.AttrsKept
// (FILE_ATTRIBUTE_NORMAL for a file with none of them,
// FILE_ATTRIBUTE_DIRECTORY for a directory, so that attributes the entry
// lacks are cleared) and the creation, access and write times that are
// not 0, together. Setting the times of a read-only file works on Samba
// and Windows alike.
//
// The descriptor (when m.SD is set) goes last, with the parts it holds:
// owner and group when present, the DACL when SE_DACL_PRESENT, the SACL
// when SE_SACL_PRESENT and the account may set SACLs (SACL()). A
// descriptor flagged auto-inherited (SE_DACL_AUTO_INHERITED) is set with
// SE_DACL_AUTO_INHERIT_REQ, and likewise for the SACL: servers (Samba as
// Windows) drop the flag otherwise.
//
// That is the other way round from nas.Share's "times last", on purpose:
// setting a descriptor changes only the change time, which no restore
// sets (TestSetMetaAfterRestrictiveDACL checks the times survive it),
// whereas a descriptor that takes the account's rights away stops the
// attributes and times being set after it on Samba, which checks the
// file's new ACL, not the handle's rights, when it writes them.
func (s *share) SetMeta(ctx context.Context, p string, m nas.Meta) error {
	n, err := name(p)
	if err != nil {
		return err
	}
	set, err := s.metaToSet(p, m)
	if err != nil {
		return err
	}
	f, err := s.tc(ctx).OpenMeta(n, set.access)
	if err != nil {
		return wrap("set the metadata of", p, err)
	}
	return set.applyClose(f, p)
}

// metaSet is what SetMeta and a file made by CreateMeta send: the
// attributes and times, the descriptor and the parts of it to set, and
// the access rights the handle needs for them.
type metaSet struct {
	m      nas.Meta
	sd     []byte
	info   smb2.SecurityInformationRequestFlags
	access uint32
}

func (s *share) metaToSet(p string, m nas.Meta) (metaSet, error) {
	set := metaSet{m: m, access: smb2.AccessWriteAttributes}
	if m.SD == nil {
		return set, nil
	}
	var err error
	if set.sd, set.info, err = s.descriptorToSet(m.SD); err != nil {
		return metaSet{}, fmt.Errorf("smb: set the security descriptor of %s: %w", p, err)
	}
	if set.info&(smb2.OwnerSecurityInformation|smb2.GroupSecurityInformation) != 0 {
		set.access |= smb2.AccessWriteOwner
	}
	if set.info&smb2.DACLSecurityInformation != 0 {
		set.access |= smb2.AccessWriteDAC
	}
	if set.info&smb2.SACLSecurityInformation != 0 {
		set.access |= smb2.AccessSystemSecurity
	}
	return set, nil
}

// applyClose applies set through f, as apply does, and closes f.
func (set metaSet) applyClose(f *smb2.File, p string) error {
	errs := set.apply(f, p)
	if err := f.Close(); err != nil && len(errs) == 0 {
		errs = append(errs, wrap("set the metadata of", p, err))
	}
	return errors.Join(errs...)
}

// apply sets the attributes and times, then the descriptor, through f
// (see SetMeta for the order), and returns what failed.
func (set metaSet) apply(f *smb2.File, p string) []error {
	var errs []error
	m := set.m
	attrs := m.Attrs & nas.AttrsKept
	if attrs == 0 {
		attrs = nas.AttrNormal
		if m.Type == nas.TypeDir || m.Attrs&nas.AttrDirectory != 0 {
			attrs = nas.AttrDirectory
		}
	}
	if err := f.SetBasicInfo(nsTime(m.BtimeNs), nsTime(m.AtimeNs), nsTime(m.MtimeNs), time.Time{}, attrs); err != nil {
		errs = append(errs, wrap("set the attributes and times of", p, err))
	}
	if set.info != 0 && (len(errs) == 0 || !isConnectionLost(errs[0])) {
		if err := f.SetSecurityInfoRaw(set.info, rawSD(set.sd)); err != nil {
			errs = append(errs, wrap("set the security descriptor of", p, err))
		}
	}
	return errs
}

// CreateMeta creates the regular file p for writing, as Create does, with
// a handle that also holds the rights to give it m (nas.MetaCreator): its
// Commit sets m as SetMeta does and closes the file, learning the size
// from the close. Where createSD allows, the file is created with its
// descriptor and Commit sets only the attributes and times: two requests
// where Create, a query, a close and SetMeta's open, two sets and close
// are six. The create is refused for want of a right where the file
// exists and its descriptor denies the account the right to change that
// descriptor.
func (s *share) CreateMeta(ctx context.Context, p string, m nas.Meta) (nas.MetaFile, error) {
	n, err := name(p)
	if err != nil {
		return nil, err
	}
	set, err := s.metaToSet(p, m)
	if err != nil {
		return nil, err
	}
	if sd := s.createSD(set, fileRightsAfterCreate); sd != nil && n != "" {
		f, err := s.tc(ctx).CreateWith(n, set.access, 0, sd)
		switch {
		case err == nil:
			return &metaFile{file: file{f: f, path: p}, set: set.withoutSD(), sdAtCreate: true}, nil
		case isConnectionLost(err) || ctx.Err() != nil:
			return nil, wrap("create", p, err)
		case !errors.Is(err, fs.ErrExist):
			// The server would not create it with this descriptor (an
			// owner or group the account may not give): the descriptor
			// is set last from now on, as it is for a file that exists.
			s.secdOff.Store(true)
		}
	}
	f, err := s.openHandle(ctx, "create", p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, set.access)
	if err != nil {
		return nil, err
	}
	return &metaFile{file: file{f: f, path: p}, set: set}, nil
}

// metaFile is a file made by CreateMeta, sdAtCreate when with its
// descriptor.
type metaFile struct {
	file
	set        metaSet
	sdAtCreate bool
}

// withoutSD is set with no descriptor left to set.
func (set metaSet) withoutSD() metaSet {
	set.sd, set.info = nil, 0
	return set
}

// Commit applies the metadata CreateMeta was given, then closes the file
// with the close asked to report the file's attributes and size.
func (f *metaFile) Commit() (int64, error) {
	errs := f.set.apply(f.f, f.path)
	st, ok, err := f.f.CloseStat()
	if err != nil {
		return -1, errors.Join(append(errs, wrap("close", f.path, err))...)
	}
	size := int64(-1)
	if ok {
		size = st.EndOfFile
		// A descriptor applied at creation that, despite createSD's
		// care, kept the account from writing the creation time (which
		// Samba drops without an error) is told, not hidden.
		if want := f.set.m.BtimeNs; f.sdAtCreate && want != 0 && st.CreationTime.UnixNano()/100 != want/100 {
			errs = append(errs, fmt.Errorf("smb: %s: the server did not keep its creation time under the descriptor it was created with: %w", f.path, fs.ErrPermission))
		}
	}
	return size, errors.Join(errs...)
}

// descriptorToSet checks sd's header and returns the descriptor to send
// and the parts to set.
func (s *share) descriptorToSet(sd []byte) ([]byte, smb2.SecurityInformationRequestFlags, error) {
	if len(sd) < sdHeaderLen || sd[0] != 1 {
		return nil, 0, errors.New("not a self-relative security descriptor")
	}
	control := binary.LittleEndian.Uint16(sd[2:])
	off := func(i int) uint32 { return binary.LittleEndian.Uint32(sd[4+4*i:]) }
	for i := range 4 {
		if o := off(i); o != 0 && (o < sdHeaderLen || int64(o) >= int64(len(sd))) {
			return nil, 0, errors.New("malformed security descriptor: an offset points outside it")
		}
	}
	var info smb2.SecurityInformationRequestFlags
	if off(0) != 0 {
		info |= smb2.OwnerSecurityInformation
	}
	if off(1) != 0 {
		info |= smb2.GroupSecurityInformation
	}
	if control&seDACLPresent != 0 {
		info |= smb2.DACLSecurityInformation
		if control&seDACLAutoInherited != 0 {
			control |= seDACLAutoInheritReq
		}
	}
	if control&seSACLPresent != 0 && s.sacl {
		info |= smb2.SACLSecurityInformation
		if control&seSACLAutoInherited != 0 {
			control |= seSACLAutoInheritReq
		}
	}
	out := append([]byte(nil), sd...)
	binary.LittleEndian.PutUint16(out[2:], control)
	return out, info, nil
}

// nsTime is ns as a time, and the zero time (leave unchanged) for 0.
func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// rawSD hands a self-relative security descriptor to go-smb2 as it is.
type rawSD []byte

func (r rawSD) Size() int         { return len(r) }
func (r rawSD) Encode(dst []byte) { copy(dst, r) }

// Free is the space the account may still write: the share's available
// allocation units times their size.
func (s *share) Free(ctx context.Context) (uint64, error) {
	st, err := s.tc(ctx).Statfs("")
	if err != nil {
		return 0, wrap("read the free space of", s.target, err)
	}
	return st.AvailableBlockCount() * st.BlockSize(), nil
}

// Close disconnects the tree and ends the session.
func (s *share) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *share) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, c := range []struct {
		tree *smb2.Share
		sess *smb2.Session
	}{{s.listTree, s.listSess}, {s.tree, s.sess}} {
		errs = append(errs, c.tree.WithContext(ctx).Umount(), c.sess.WithContext(ctx).Logoff())
	}
	err := errors.Join(errs...)
	if err != nil && isConnectionLost(err) {
		// Nothing is left to end.
		return nil
	}
	return wrap("disconnect from", s.target, err)
}

// file is an open file of a share.
type file struct {
	f    *smb2.File
	path string
}

// StatHandle describes the open file with one query on its handle
// (nas.HandleStat).
func (f *file) StatHandle() (nas.Info, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return nas.Info{}, wrap("stat", f.path, err)
	}
	st, ok := fi.Sys().(*smb2.FileStat)
	if !ok {
		return nas.Info{}, fmt.Errorf("smb: stat %s: no SMB metadata", f.path)
	}
	return infoOf(st), nil
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(b, off)
	if err == io.EOF {
		return n, io.EOF
	}
	if err != nil {
		return n, wrap("read", f.path, err)
	}
	if n < len(b) {
		// go-smb2 returns a short read at the end of the file without
		// saying so; io.ReaderAt must.
		return n, io.EOF
	}
	return n, nil
}

func (f *file) WriteAt(b []byte, off int64) (int, error) {
	n, err := f.f.WriteAt(b, off)
	return n, wrap("write", f.path, err)
}

func (f *file) Close() error {
	return wrap("close", f.path, f.f.Close())
}

// NTSTATUS codes (MS-ERREF 2.3) that the errors are sorted by.
const (
	statusNoSuchFile            = 0xC000000F
	statusObjectNameNotFound    = 0xC0000034
	statusObjectPathNotFound    = 0xC000003A
	statusNotFound              = 0xC0000225
	statusNetworkNameDeleted    = 0xC00000C9
	statusUserSessionDeleted    = 0xC0000203
	statusConnectionDisconnect  = 0xC000020C
	statusConnectionReset       = 0xC000020D
	statusNetworkSessionExpired = 0xC000035C
	statusInvalidOwner          = 0xC000005A
	statusInvalidPrimaryGroup   = 0xC000005B
	statusFileIsADirectory      = 0xC00000BA
)

// wrap says what failed where, with errors.Is(err, nas.ErrConnectionLost)
// for a dropped connection, errors.Is(err, fs.ErrNotExist) for a missing
// file and errors.Is(err, fs.ErrPermission) for a refusal for want of a
// right (go-smb2 maps only access denied to it; an owner or group the
// account may not give, or a missing privilege, are refusals too);
// go-smb2's own path is dropped, the share-relative one given.
func wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	c := cause(err)
	switch {
	case isConnectionLost(err):
		return fmt.Errorf("smb: %s %s: %w: %w", op, p, nas.ErrConnectionLost, c)
	case isNotFound(err) && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("smb: %s %s: %w (%w)", op, p, fs.ErrNotExist, c)
	case isRefused(err) && !errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("smb: %s %s: %w (%w)", op, p, fs.ErrPermission, c)
	}
	return fmt.Errorf("smb: %s %s: %w", op, p, c)
}

// cause strips go-smb2's path errors, which name its backslashed path.
func cause(err error) error {
	for {
		var pe *os.PathError
		var le *os.LinkError
		switch {
		case errors.As(err, &pe) && pe == err:
			err = pe.Err
		case errors.As(err, &le) && le == err:
			err = le.Err
		default:
			return err
		}
	}
}

func isConnectionLost(err error) bool {
	if err == nil {
		return false
	}
	var te *smb2.TransportError
	if errors.As(err, &te) {
		return true
	}
	var re *smb2.ResponseError
	if errors.As(err, &re) {
		switch re.Code {
		case statusNetworkNameDeleted, statusUserSessionDeleted, statusConnectionDisconnect, statusConnectionReset, statusNetworkSessionExpired:
			return true
		}
	}
	var oe *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.As(err, &oe)
}

func isRefused(err error) bool {
	var re *smb2.ResponseError
	if errors.As(err, &re) {
		switch re.Code {
		case statusPrivilegeNotHeld, statusInvalidOwner, statusInvalidPrimaryGroup:
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	var re *smb2.ResponseError
	if errors.As(err, &re) {
		switch re.Code {
		case statusNoSuchFile, statusObjectNameNotFound, statusObjectPathNotFound, statusNotFound:
			return true
		}
	}
	return false
}

// isStatus tells whether the server answered err with the NTSTATUS code.
func isStatus(err error, code uint32) bool {
	var re *smb2.ResponseError
	return errors.As(err, &re) && re.Code == code
}
