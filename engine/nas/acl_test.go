package nas

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// sid builds S-1-5-21-a-b-c-rid.
func sid(rid uint32) []byte {
	b := []byte{1, 5, 0, 0, 0, 0, 0, 5}
	for _, sub := range []uint32{21, 1000, 2000, 3000, rid} {
		b = binary.LittleEndian.AppendUint32(b, sub)
	}
	return b
}

// ace builds an ACCESS_ALLOWED ACE (type 0) granting mask to the SID of rid.
func ace(flags byte, mask, rid uint32) []byte {
	s := sid(rid)
	b := []byte{0, flags, 0, 0}
	b = binary.LittleEndian.AppendUint32(b, mask)
	b = append(b, s...)
	binary.LittleEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func sd(control uint16, owner, group uint32, dacl ...[]byte) []byte {
	d := &descriptor{control: control, owner: sid(owner), group: sid(group), dacl: &acl{revision: 2, aces: dacl}}
	return d.bytes()
}

func daclOf(t *testing.T, b []byte) [][]byte {
	t.Helper()
	d, err := parseDescriptor(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.dacl == nil {
		return nil
	}
	return d.dacl.aces
}

func TestDescriptorRoundTrip(t *testing.T) {
	in := sd(sdDACLPresent, 500, 513, ace(0, 0x1f01ff, 1001), ace(aceInherited, 0x1200a9, 1002))
	d, err := parseDescriptor(in)
	if err != nil {
		t.Fatal(err)
	}
	if out := d.bytes(); !bytes.Equal(out, in) {
		t.Fatalf("round trip changed the descriptor:\n%x\n%x", in, out)
	}
	for _, bad := range [][]byte{nil, in[:19], append([]byte{2}, in[1:]...), in[:len(in)-3]} {
		if _, err := parseDescriptor(bad); err == nil {
			t.Errorf("parsed a malformed descriptor %x", bad)
		}
	}
}

func TestInheritAtAnAlternateLocation(t *testing.T) {
	explicit := ace(0, 0x1f01ff, 1001)
	oldInherited := ace(aceInherited, 0x1200a9, 1002)
	entry := sd(sdDACLPresent, 500, 513, explicit, oldInherited)

	both := ace(aceObjectInherit|aceContainerInherit, 0x1301bf, 2001)
	dirsOnly := ace(aceContainerInherit, 0x1200a9, 2002)
	filesOneLevel := ace(aceObjectInherit|aceNoPropagate, 0x120089, 2003)
	notInherited := ace(0, 0x1f01ff, 2004)
	parent := sd(sdDACLPresent, 600, 513, both, dirsOnly, filesOneLevel, notInherited)

	withFlags := func(a []byte, f byte) []byte {
		c := append([]byte(nil), a...)
		c[1] = f
		return c
	}
	for _, tc := range []struct {
		name string
		dir  bool
		want [][]byte
	}{
		{"file", false, [][]byte{explicit, withFlags(both, aceInherited), withFlags(filesOneLevel, aceInherited)}},
		{"dir", true, [][]byte{explicit, withFlags(both, aceObjectInherit|aceContainerInherit|aceInherited), withFlags(dirsOnly, aceContainerInherit|aceInherited)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Inherit(entry, parent, tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			got := daclOf(t, out)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d ACEs, want %d: %x", len(got), len(tc.want), got)
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Errorf("ACE %d = %x, want %x", i, got[i], tc.want[i])
				}
			}
			d, _ := parseDescriptor(out)
			if !bytes.Equal(d.owner, sid(500)) || !bytes.Equal(d.group, sid(513)) {
				t.Error("the owner or group did not travel with the entry")
			}
		})
	}

	// An inherit-only object ACE on a directory passes on to its files.
	objOnly := ace(aceObjectInherit, 0x120089, 2005)
	out, err := Inherit(entry, sd(sdDACLPresent, 600, 513, objOnly), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := daclOf(t, out); len(got) != 2 || got[1][1] != aceObjectInherit|aceInheritOnly|aceInherited {
		t.Fatalf("a directory under an object-inherit ACE got %x", got)
	}
}

func TestInheritKeepsAProtectedACL(t *testing.T) {
	entry := sd(sdDACLPresent|sdDACLProtected, 500, 513, ace(0, 0x1f01ff, 1001), ace(aceInherited, 0x1200a9, 1002))
	parent := sd(sdDACLPresent, 600, 513, ace(aceObjectInherit|aceContainerInherit, 0x1301bf, 2001))
	out, err := Inherit(entry, parent, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, entry) {
		t.Fatalf("a protected descriptor changed:\n%x\n%x", entry, out)
	}
	if same, _ := Inherit(entry, nil, false); !bytes.Equal(same, entry) {
		t.Fatal("without a parent's descriptor the entry's changed")
	}
}

func TestInheritGivesCreatorOwnerToTheOwner(t *testing.T) {
	creator := []byte{0, aceObjectInherit | aceContainerInherit | aceInheritOnly, 0, 0, 0xff, 0x01, 0x1f, 0x00}
	creator = append(creator, sidCreatorOwner...)
	binary.LittleEndian.PutUint16(creator[2:], uint16(len(creator)))
	parent := sd(sdDACLPresent, 600, 513, creator)
	entry := sd(sdDACLPresent, 500, 513)
	for _, dir := range []bool{false, true} {
		out, err := Inherit(entry, parent, dir)
		if err != nil {
			t.Fatal(err)
		}
		got := daclOf(t, out)
		if len(got) == 0 || !bytes.Equal(aceSID(got[0]), sid(500)) || got[0][1] != aceInherited {
			t.Fatalf("dir=%v: CREATOR OWNER's ACE became %x, want the owner's, inherited", dir, got)
		}
		if dir && (len(got) != 2 || !bytes.Equal(aceSID(got[1]), sidCreatorOwner) || got[1][1]&aceInheritOnly == 0) {
			t.Fatalf("a directory does not pass CREATOR OWNER on: %x", got)
		}
		if !dir && len(got) != 1 {
			t.Fatalf("a file got %d ACEs from one", len(got))
		}
	}
}

// Grants says yes only where the descriptor leaves the account nothing to
// chance: owned by it (or by no one), allow ACEs only, and every asked
// right granted by ACEs that apply to the object and name the account,
// Everyone or Authenticated Users.
func TestGrants(t *testing.T) {
	const me, other, need = 1000, 1001, 0x0112
	everyone := func(flags byte, mask uint32) []byte {
		b := []byte{0, flags, 20, 0}
		b = binary.LittleEndian.AppendUint32(b, mask)
		return append(b, sidEveryone...)
	}
	deny := ace(0, 0x100, other)
	deny[0] = 1 // ACCESS_DENIED
	noDACL := (&descriptor{control: 0, owner: sid(me)}).bytes()
	for _, c := range []struct {
		name string
		sd   []byte
		want bool
	}{
		{"full control for the owner", sd(sdDACLPresent, me, 513, ace(0, 0x1f01ff, me)), true},
		{"rights split over two ACEs", sd(sdDACLPresent, me, 513, ace(0, 0x0102, me), everyone(0, 0x0010)), true},
		{"generic write", sd(sdDACLPresent, me, 513, ace(0, 0x40000000, me)), true},
		{"read only", sd(sdDACLPresent, me, 513, ace(0, 0x1200a9, me)), false},
		{"inherit only", sd(sdDACLPresent, me, 513, ace(aceInheritOnly|aceObjectInherit, 0x1f01ff, me)), false},
		{"another owner", sd(sdDACLPresent, other, 513, ace(0, 0x1f01ff, me)), false},
		{"granted to another", sd(sdDACLPresent, me, 513, ace(0, 0x1f01ff, other)), false},
		{"a deny ACE", sd(sdDACLPresent, me, 513, ace(0, 0x1f01ff, me), deny), false},
		{"no DACL", noDACL, false},
		{"malformed", []byte{1, 0, 4}, false},
	} {
		if got := Grants(c.sd, sid(me), need); got != c.want {
			t.Errorf("%s: Grants = %v, want %v", c.name, got, c.want)
		}
	}
	if Grants(sd(sdDACLPresent, me, 513, ace(0, 0x1f01ff, me)), nil, need) {
		t.Error("Grants without an account said yes")
	}
}

func TestWithoutSACLAndOwnerOf(t *testing.T) {
	d := &descriptor{control: sdDACLPresent | sdSACLPresent, owner: sid(7), group: sid(513),
		sacl: &acl{revision: 2, aces: [][]byte{ace(0x40, 0x1f01ff, 9)}},
		dacl: &acl{revision: 2, aces: [][]byte{ace(0, 0x1f01ff, 7)}}}
	out, err := WithoutSACL(d.bytes())
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseDescriptor(out)
	if err != nil || got.sacl != nil || got.control&sdSACLPresent != 0 || len(got.dacl.aces) != 1 || !bytes.Equal(got.owner, sid(7)) {
		t.Fatalf("WithoutSACL: %+v, %v", got, err)
	}
	if owner, err := OwnerOf(out); err != nil || !bytes.Equal(owner, sid(7)) {
		t.Errorf("OwnerOf = %x, %v", owner, err)
	}
	if _, err := OwnerOf([]byte{1}); err == nil {
		t.Error("OwnerOf of a malformed descriptor: no error")
	}
}
