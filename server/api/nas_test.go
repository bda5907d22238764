package api

import (
	"encoding/base64"
	"testing"
)

func TestSplitNASHost(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		ok   bool
	}{
		{"nas01.example.com", "nas01.example.com", 0, true},
		{"nas01.example.com:1445", "nas01.example.com", 1445, true},
		{"filer", "filer", 0, true},
		{"192.0.2.10", "192.0.2.10", 0, true},
		{"192.0.2.10:445", "192.0.2.10", 445, true},
		{"2001:db8::5", "2001:db8::5", 0, true},
		{"[2001:db8::5]:445", "2001:db8::5", 445, true},
		{"", "", 0, false},
		{"nas 01", "", 0, false},
		{"nas01:0", "", 0, false},
		{"nas01:70000", "", 0, false},
		{"nas01:0445", "", 0, false},
		{"nas01:smb", "", 0, false},
		{"[nas01]:445", "", 0, false},
		{"-nas.example.com", "", 0, false},
		{"smb://nas01", "", 0, false},
		{"nas01/share", "", 0, false},
	} {
		host, port, problem := SplitNASHost(tc.in)
		if (problem == "") != tc.ok || host != tc.host || port != tc.port {
			t.Errorf("SplitNASHost(%q) = %q, %d, %q; want %q, %d, ok=%v", tc.in, host, port, problem, tc.host, tc.port, tc.ok)
		}
	}
}

func TestDecodeKeytab(t *testing.T) {
	keytab := []byte{0x05, 0x02, 0, 0, 0, 1, 'x'}
	if b, err := DecodeKeytab(base64.StdEncoding.EncodeToString(keytab)); err != nil || string(b) != string(keytab) {
		t.Errorf("a keytab: %v %v", b, err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("password")), base64.StdEncoding.EncodeToString([]byte{5})} {
		if _, err := DecodeKeytab(bad); err == nil {
			t.Errorf("DecodeKeytab(%q): no error", bad)
		}
	}
}

func TestSharePathsAndNames(t *testing.T) {
	for p, ok := range map[string]bool{"projects": true, "projects/2024": true, "a b/c": true, "": false, "/projects": false,
		"projects/": false, "a//b": false, "a/./b": false, "../a": false, "..": false, ".": false, `a\b`: false, "a\x00b": false} {
		if ValidSharePath(p) != ok {
			t.Errorf("ValidSharePath(%q) = %v, want %v", p, !ok, ok)
		}
	}
	for _, tc := range []struct {
		protocol, share string
		ok              bool
	}{
		{ProtocolSMB, "projects", true}, {ProtocolSMB, "Finance$", true}, {ProtocolSMB, "a/b", false}, {ProtocolSMB, `a\b`, false},
		{ProtocolNFS, "/export/projects", true}, {ProtocolNFS, "export", false}, {ProtocolNFS, "/export/", false}, {ProtocolNFS, "/a/../b", false},
	} {
		if got := ShareNameProblem(tc.protocol, tc.share) == ""; got != tc.ok {
			t.Errorf("ShareNameProblem(%s, %q) ok = %v, want %v", tc.protocol, tc.share, got, tc.ok)
		}
	}
}

func TestNASRestoreValidate(t *testing.T) {
	r := RestoreRequest{PointID: "p", Paths: []string{"/projects/a.docx"}, Include: []string{"*.docx"}, NAS: &NASRestore{Path: "restored/today"}}
	if err := r.Validate(); err != nil || r.NAS.Conflict != "overwrite" {
		t.Fatalf("a NAS restore with paths, include and a path: %v (conflict %q)", err, r.NAS.Conflict)
	}
	for _, tc := range []struct {
		req   RestoreRequest
		field string
	}{
		{RestoreRequest{PointID: "p", NAS: &NASRestore{Path: "/restored"}}, "nas.path"},
		{RestoreRequest{PointID: "p", NAS: &NASRestore{Conflict: "merge"}}, "nas.conflict"},
		{RestoreRequest{PointID: "p", TargetPath: "/srv", NAS: &NASRestore{}}, "nas"},
		{RestoreRequest{PointID: "p", TargetFileServerID: "f", NAS: &NASRestore{}}, "nas"},
		{RestoreRequest{PointID: "p", Conflict: "skip", NAS: &NASRestore{}}, "nas"},
		{RestoreRequest{PointID: "p", VM: &VMRestore{Name: "x"}, NAS: &NASRestore{}}, "nas"},
		{RestoreRequest{PointID: "p", Database: &DatabaseRestore{}, NAS: &NASRestore{}}, "nas"},
	} {
		if err := tc.req.Validate(); err == nil || err.Field != tc.field {
			t.Errorf("%+v: %v, want an error naming %s", tc.req, err, tc.field)
		}
	}
}
