package nas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Security descriptors (MS-DTYP 2.4.6), in their self-relative form, as
// SMB carries them. Haven stores them as they were read and restores them
// byte for byte to where they came from. To anywhere else it applies the
// alternate-location rule (Inherit), which needs to tell a descriptor's
// explicit ACEs from its inherited ones: that is all this file parses.

// Descriptor control bits.
const (
	sdDACLPresent   = 0x0004
	sdSACLPresent   = 0x0010
	sdDACLProtected = 0x1000
	sdSACLProtected = 0x2000
	sdSelfRelative  = 0x8000
)

// ACE flags.
const (
	aceObjectInherit    = 0x01
	aceContainerInherit = 0x02
	aceNoPropagate      = 0x04
	aceInheritOnly      = 0x08
	aceInherited        = 0x10
)

// descriptor is a parsed self-relative security descriptor: its parts as
// raw bytes, and its ACLs as lists of raw ACEs.
type descriptor struct {
	control      uint16
	owner, group []byte // SIDs, nil when absent
	sacl, dacl   *acl   // nil when absent
}

type acl struct {
	revision byte
	aces     [][]byte // each a whole ACE: header (type, flags, size) and body
}

var errBadDescriptor = errors.New("malformed security descriptor")

func parseDescriptor(b []byte) (*descriptor, error) {
	if len(b) < 20 || b[0] != 1 {
		return nil, errBadDescriptor
	}
	d := &descriptor{control: binary.LittleEndian.Uint16(b[2:])}
	off := func(i int) uint32 { return binary.LittleEndian.Uint32(b[4+4*i:]) }
	var err error
	if d.owner, err = sidAt(b, off(0)); err != nil {
		return nil, err
	}
	if d.group, err = sidAt(b, off(1)); err != nil {
		return nil, err
	}
	if d.control&sdSACLPresent != 0 && off(2) != 0 {
		if d.sacl, err = aclAt(b, off(2)); err != nil {
			return nil, err
		}
	}
	if d.control&sdDACLPresent != 0 && off(3) != 0 {
		if d.dacl, err = aclAt(b, off(3)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func sidAt(b []byte, off uint32) ([]byte, error) {
	if off == 0 {
		return nil, nil
	}
	if uint64(off)+8 > uint64(len(b)) {
		return nil, errBadDescriptor
	}
	n := 8 + 4*int(b[off+1])
	if int(off)+n > len(b) {
		return nil, errBadDescriptor
	}
	return b[off : int(off)+n], nil
}

func aclAt(b []byte, off uint32) (*acl, error) {
	if uint64(off)+8 > uint64(len(b)) {
		return nil, errBadDescriptor
	}
	size := int(binary.LittleEndian.Uint16(b[off+2:]))
	count := int(binary.LittleEndian.Uint16(b[off+4:]))
	end := int(off) + size
	if size < 8 || end > len(b) {
		return nil, errBadDescriptor
	}
	a := &acl{revision: b[off]}
	p := int(off) + 8
	for range count {
		if p+4 > end {
			return nil, errBadDescriptor
		}
		n := int(binary.LittleEndian.Uint16(b[p+2:]))
		if n < 4 || p+n > end {
			return nil, errBadDescriptor
		}
		a.aces = append(a.aces, b[p:p+n])
		p += n
	}
	return a, nil
}

// bytes encodes d self-relative: owner, group, SACL, DACL in that order.
func (d *descriptor) bytes() []byte {
	out := make([]byte, 20)
	out[0] = 1
	ctl := d.control | sdSelfRelative
	put := func(field int, part []byte) {
		if part == nil {
			return
		}
		binary.LittleEndian.PutUint32(out[4+4*field:], uint32(len(out)))
		out = append(out, part...)
	}
	put(0, d.owner)
	put(1, d.group)
	ctl &^= sdSACLPresent | sdDACLPresent
	if d.sacl != nil {
		ctl |= sdSACLPresent
		put(2, d.sacl.bytes())
	}
	if d.dacl != nil {
		ctl |= sdDACLPresent
		put(3, d.dacl.bytes())
	}
	binary.LittleEndian.PutUint16(out[2:], ctl)
	return out
}

func (a *acl) bytes() []byte {
	size := 8
	for _, ace := range a.aces {
		size += len(ace)
	}
	out := make([]byte, 8, size)
	out[0] = a.revision
	binary.LittleEndian.PutUint16(out[2:], uint16(size))
	binary.LittleEndian.PutUint16(out[4:], uint16(len(a.aces)))
	for _, ace := range a.aces {
		out = append(out, ace...)
	}
	return out
}

// Inherit applies Haven's rule for a restore to an alternate location to
// an entry's descriptor sd, given the descriptor its new parent has there
// (nil when the parent's is unknown: sd is then kept as it was):
//
//   - The owner, the group and every explicit ACE travel with the data.
//   - ACEs the entry had inherited at its old location are dropped, and
//     the entry inherits instead what its new parent passes down, as
//     Windows would have had the entry been created there: a file takes
//     the parent's object-inherit ACEs, a directory its container-inherit
//     ones (and keeps its object-inherit ones as inherit-only, for its
//     files), no-propagate ACEs stop after one level.
//   - An inheritable ACE for CREATOR OWNER or CREATOR GROUP grants its
//     access to the entry's own owner or group (and stays inheritable on
//     a directory).
//   - An ACL marked protected (inheritance disabled) is kept whole: it
//     inherited nothing at its old location and inherits nothing at the
//     new one.
//
// The same applies to the SACL. The explicit ACEs come first, then the
// inherited ones, in the canonical order Windows expects.
func Inherit(sd, parent []byte, dir bool) ([]byte, error) {
	if sd == nil || parent == nil {
		return sd, nil
	}
	d, err := parseDescriptor(sd)
	if err != nil {
		return nil, err
	}
	p, err := parseDescriptor(parent)
	if err != nil {
		return nil, fmt.Errorf("the destination's parent: %w", err)
	}
	if d.control&sdDACLProtected == 0 {
		d.dacl = inheritACL(d.dacl, p.dacl, dir, d.owner, d.group)
	}
	if d.control&sdSACLProtected == 0 && d.sacl != nil {
		d.sacl = inheritACL(d.sacl, p.sacl, dir, d.owner, d.group)
	}
	return d.bytes(), nil
}

// The SIDs that stand for a new object's owner and group in inheritable
// ACEs (S-1-3-0, S-1-3-1).
var (
	sidCreatorOwner = []byte{1, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0}
	sidCreatorGroup = []byte{1, 1, 0, 0, 0, 0, 0, 3, 1, 0, 0, 0}
)

// aceSID is the SID of an ACE whose body is a mask and a SID (the
// ACCESS_ALLOWED, ACCESS_DENIED, SYSTEM_AUDIT and SYSTEM_ALARM types), at
// offset 8; nil for other types (object ACEs, callbacks).
func aceSID(ace []byte) []byte {
	if ace[0] > 3 || len(ace) < 16 {
		return nil
	}
	return ace[8:]
}

func inheritACL(own, parent *acl, dir bool, owner, group []byte) *acl {
	out := &acl{revision: 2}
	if own != nil {
		out.revision = own.revision
		for _, ace := range own.aces {
			if ace[1]&aceInherited == 0 {
				out.aces = append(out.aces, ace)
			}
		}
	}
	if parent != nil {
		out.revision = max(out.revision, parent.revision)
		for _, ace := range parent.aces {
			flags, ok := inheritedFlags(ace[1], dir)
			if !ok {
				continue
			}
			sid := aceSID(ace)
			var stand []byte
			switch {
			case sid == nil:
			case bytes.HasPrefix(sid, sidCreatorOwner) && len(sid) == len(sidCreatorOwner):
				stand = owner
			case bytes.HasPrefix(sid, sidCreatorGroup) && len(sid) == len(sidCreatorGroup):
				stand = group
			}
			if stand == nil || flags&aceInheritOnly != 0 {
				c := append([]byte(nil), ace...)
				c[1] = flags
				out.aces = append(out.aces, c)
				continue
			}
			// CREATOR OWNER or GROUP: the entry's own owner or group
			// gets the access, and a directory passes the ACE on as
			// it was (inherit-only) unless it stops here.
			eff := append(append([]byte(nil), ace[:8]...), stand...)
			binary.LittleEndian.PutUint16(eff[2:], uint16(len(eff)))
			eff[1] = aceInherited | flags&0xc0
			out.aces = append(out.aces, eff)
			if dir && flags&(aceObjectInherit|aceContainerInherit) != 0 {
				c := append([]byte(nil), ace...)
				c[1] = flags | aceInheritOnly
				out.aces = append(out.aces, c)
			}
		}
	}
	if own == nil && len(out.aces) == 0 {
		return nil
	}
	return out
}

// inheritedFlags are the flags of the copy a child (a directory or not)
// inherits of an ACE with flags f, and whether it inherits one at all.
func inheritedFlags(f byte, dir bool) (byte, bool) {
	audit := f & 0xc0 // successful/failed access, on audit ACEs
	switch {
	case !dir && f&aceObjectInherit != 0:
		return aceInherited | audit, true
	case dir && f&aceContainerInherit != 0:
		if f&aceNoPropagate != 0 {
			return aceInherited | audit, true
		}
		return f&(aceObjectInherit|aceContainerInherit) | aceInherited | audit, true
	case dir && f&aceObjectInherit != 0 && f&aceNoPropagate == 0:
		return aceObjectInherit | aceInheritOnly | aceInherited | audit, true
	}
	return 0, false
}

// Well-known SIDs that take in every authenticated account: Everyone
// (S-1-1-0) and Authenticated Users (S-1-5-11).
var (
	sidEveryone      = []byte{1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	sidAuthenticated = []byte{1, 1, 0, 0, 0, 0, 0, 5, 11, 0, 0, 0}
)

// Generic rights that hold every specific right Grants asks about.
const (
	genericAll   = 0x10000000
	genericWrite = 0x40000000
)

// Grants tells whether the descriptor sd plainly lets the account whose
// SID is account do everything in mask to what it protects, with nothing
// left to chance: its owner is that account (or absent), its DACL is
// present and holds allow ACEs only (no deny ACE, no object or callback
// ACE), and the allow ACEs that apply to the object itself (not inherit
// only) and name the account, Everyone or Authenticated Users grant every
// right in mask between them. A restore creates an entry with its
// descriptor already applied only where this holds: a descriptor that
// denies the account what the restore still has to do after it (set the
// times, create the entries of a directory) would stop it, on Samba even
// silently. Any doubt answers false, and the descriptor is set last.
func Grants(sd, account []byte, mask uint32) bool {
	d, err := parseDescriptor(sd)
	if err != nil || len(account) == 0 || d.dacl == nil {
		return false
	}
	if d.owner != nil && !bytes.Equal(d.owner, account) {
		return false
	}
	var granted uint32
	for _, ace := range d.dacl.aces {
		if ace[0] != 0 || len(ace) < 16 { // ACCESS_ALLOWED_ACE_TYPE only
			return false
		}
		if ace[1]&aceInheritOnly != 0 {
			continue
		}
		sid := ace[8:]
		if !bytes.Equal(sid, account) && !bytes.Equal(sid, sidEveryone) && !bytes.Equal(sid, sidAuthenticated) {
			continue
		}
		m := binary.LittleEndian.Uint32(ace[4:])
		if m&(genericAll|genericWrite) != 0 {
			m |= mask
		}
		granted |= m
	}
	return granted&mask == mask
}

// WithoutSACL is sd without its SACL, for a server that must not be asked
// to set one.
func WithoutSACL(sd []byte) ([]byte, error) {
	d, err := parseDescriptor(sd)
	if err != nil {
		return nil, err
	}
	if d.control&sdSACLPresent == 0 {
		return sd, nil
	}
	d.sacl = nil
	return d.bytes(), nil
}

// OwnerOf is the owner SID of the descriptor sd, nil when it has none.
func OwnerOf(sd []byte) ([]byte, error) {
	d, err := parseDescriptor(sd)
	if err != nil {
		return nil, err
	}
	return d.owner, nil
}
