package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// testKeytab is the start of a real keytab file (version 0x0502) with one
// entry's worth of made-up bytes: what the server checks is the format.
var testKeytab = append([]byte{0x05, 0x02, 0, 0, 0, 0x30}, []byte("HAVEN.TEST\x00backup\x00made-up-key-bytes")...)

// nasRow reads a NAS device's stored spec and sealed secret straight from
// the catalog, as the NAS driver will.
func nasRow(t *testing.T, srv *servertest.Server, id string) (spec string, sealed []byte) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT spec::text, sealed_secret FROM nas_devices WHERE id = $1`, id).Scan(&spec, &sealed); err != nil {
		t.Fatal(err)
	}
	return spec, sealed
}

// TestNASDevicesAndShares covers the control plane of NAS protection: a
// device's secrets are sealed with the master key under the NAS context
// and never returned, kept by updates that leave them out and replaced by
// those that send one; what is wrong is refused naming the field; a
// share's protocol must be one the device serves; a share takes its
// device's group, also when the device's changes; and what is in use is
// not deleted.
func TestNASDevicesAndShares(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "master.key")
	srv := servertest.StartWith(t, func(c *server.Config) { c.MasterKeyFile = keyFile })
	ctx := context.Background()
	c := srv.Client
	rc := newRoleClients(t, srv)
	h := newHostSetup(t, srv)
	proxy1 := createFileServer(t, c, api.FileServerSpec{Name: "proxy-1", Hostname: "proxy-1", OS: api.OSLinux, Location: api.LocationAgent})
	proxy2 := createFileServer(t, c, api.FileServerSpec{Name: "proxy-2", Hostname: "proxy-2", OS: api.OSLinux, Location: api.LocationAgent})
	here := createFileServer(t, c, api.FileServerSpec{Name: "here", Hostname: "localhost", OS: api.OSLinux, Location: api.LocationServer})
	master, err := keys.LoadOrCreate(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	unseal := func(sealed []byte) api.NASCredentials {
		t.Helper()
		plain, err := master.Open(sealed, api.NASCredentialsContext)
		if err != nil {
			t.Fatalf("the sealed credentials do not open with the master key under %q: %v", api.NASCredentialsContext, err)
		}
		var creds api.NASCredentials
		if err := json.Unmarshal(plain, &creds); err != nil {
			t.Fatal(err)
		}
		return creds
	}
	const password = "nas-Pa55word-9f3e"

	// Created with the proxies named by name: ids are stored, protocols
	// sorted, the password sealed and never answered.
	spec := api.NASDeviceSpec{Name: "filer", Host: "filer.example.com:1445", Protocols: []string{api.ProtocolSMB, api.ProtocolNFS},
		SMBUser: "backup", SMBDomain: "CORP", SMBPassword: password, NFSUID: 1000, NFSGID: 1000, NFSPort: 2049,
		ProxyFileServerIDs: []string{"proxy-1", proxy2.ID}, Group: "team-a"}
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodPost, "/v1/nas-devices", nil, api.NASDeviceRequest{NASDeviceSpec: spec}, &raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), password) || strings.Contains(string(raw), `"smb_password"`) {
		t.Fatalf("the create's answer carries the password: %s", raw)
	}
	var dev api.NASDevice
	if err := json.Unmarshal(raw, &dev); err != nil {
		t.Fatal(err)
	}
	if !dev.HasSMBPassword || dev.HasSMBKeytab || !slices.Equal(dev.Protocols, []string{"nfs", "smb"}) ||
		!slices.Equal(dev.ProxyFileServerIDs, []string{proxy1.ID, proxy2.ID}) || dev.Group != "team-a" || dev.NFSUID != 1000 {
		t.Fatalf("created NAS device: %+v", dev)
	}
	stored, sealed := nasRow(t, srv, dev.ID)
	if strings.Contains(stored, password) {
		t.Fatalf("the spec column holds the password: %s", stored)
	}
	if creds := unseal(sealed); creds.SMBPassword != password || creds.SMBKeytab != nil {
		t.Fatalf("sealed credentials: %+v", creds)
	}
	if got, err := c.NASDevices().Get(ctx, "filer"); err != nil || got.ID != dev.ID || got.SMBPassword != "" || !got.HasSMBPassword {
		t.Fatalf("reading the device by name: %+v %v", got, err)
	}

	// An update that leaves the password out keeps it.
	spec.SMBPassword, spec.ProxyFileServerIDs = "", []string{proxy1.ID}
	dev2, err := c.NASDevices().Update(ctx, dev.ID, dev.Version, api.NASDeviceRequest{NASDeviceSpec: spec})
	if err != nil || !dev2.HasSMBPassword || !slices.Equal(dev2.ProxyFileServerIDs, []string{proxy1.ID}) {
		t.Fatalf("update keeping the password: %+v %v", dev2, err)
	}
	if _, again := nasRow(t, srv, dev.ID); string(again) != string(sealed) {
		t.Fatal("an update without a password changed the sealed credentials")
	}
	// A keytab replaces the password.
	spec.SMBKerberosKeytab = base64.StdEncoding.EncodeToString(testKeytab)
	dev3, err := c.NASDevices().Update(ctx, dev.ID, dev2.Version, api.NASDeviceRequest{NASDeviceSpec: spec})
	if err != nil || dev3.HasSMBPassword || !dev3.HasSMBKeytab {
		t.Fatalf("update with a keytab: %+v %v", dev3, err)
	}
	stored, sealed = nasRow(t, srv, dev.ID)
	if creds := unseal(sealed); creds.SMBPassword != "" || string(creds.SMBKeytab) != string(testKeytab) {
		t.Fatalf("sealed credentials after the keytab: %+v", creds)
	}
	if strings.Contains(stored, spec.SMBKerberosKeytab) {
		t.Fatalf("the spec column holds the keytab: %s", stored)
	}
	spec.SMBKerberosKeytab = ""

	// What is wrong is refused naming the field.
	for _, tc := range []struct {
		what   string
		change func(*api.NASDeviceSpec)
		status int
		field  string
	}{
		{"a host with a space", func(s *api.NASDeviceSpec) { s.Host = "filer 01" }, 400, "host"},
		{"a port out of range", func(s *api.NASDeviceSpec) { s.Host = "filer:70000" }, 400, "host"},
		{"an unknown protocol", func(s *api.NASDeviceSpec) { s.Protocols = []string{"afp"} }, 400, "protocols[0]"},
		{"no protocol", func(s *api.NASDeviceSpec) { s.Protocols = nil }, 400, "protocols"},
		{"smb without a user", func(s *api.NASDeviceSpec) { s.SMBUser = "" }, 400, "smb_user"},
		{"smb without a password or keytab", func(s *api.NASDeviceSpec) {}, 400, "smb_password"},
		{"both secrets", func(s *api.NASDeviceSpec) {
			s.SMBPassword, s.SMBKerberosKeytab = password, base64.StdEncoding.EncodeToString(testKeytab)
		}, 400, "smb_kerberos_keytab"},
		{"a keytab that is not one", func(s *api.NASDeviceSpec) {
			s.SMBKerberosKeytab = base64.StdEncoding.EncodeToString([]byte("not a keytab"))
		}, 400, "smb_kerberos_keytab"},
		{"an SMB user on an NFS device", func(s *api.NASDeviceSpec) { s.Protocols, s.Host = []string{"nfs"}, "filer" }, 400, "smb_user"},
		{"an NFS identity on an SMB-only device", func(s *api.NASDeviceSpec) { s.Protocols, s.SMBPassword = []string{"smb"}, password }, 400, "nfs_uid"},
		{"a uid out of range", func(s *api.NASDeviceSpec) { s.NFSUID, s.SMBPassword = 1<<32, password }, 400, "nfs_uid"},
		{"no proxy", func(s *api.NASDeviceSpec) { s.ProxyFileServerIDs, s.SMBPassword = nil, password }, 400, "proxy_file_server_ids"},
		{"a proxy twice", func(s *api.NASDeviceSpec) {
			s.ProxyFileServerIDs, s.SMBPassword = []string{proxy1.ID, "proxy-1"}, password
		}, 400, "proxy_file_server_ids[1]"},
		{"a proxy that is the Haven host", func(s *api.NASDeviceSpec) {
			s.ProxyFileServerIDs, s.SMBPassword = []string{proxy1.ID, here.ID}, password
		}, 422, "proxy_file_server_ids[1]"},
		{"a proxy that does not exist", func(s *api.NASDeviceSpec) { s.ProxyFileServerIDs, s.SMBPassword = []string{"ghost"}, password }, 422, "proxy_file_server_ids[0]"},
	} {
		bad := spec
		bad.Name = "bad"
		bad.Protocols = slices.Clone(spec.Protocols)
		tc.change(&bad)
		_, err := c.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: bad})
		wantRefused(t, tc.what, err, tc.status, tc.field)
	}
	// Only admins and operators manage devices.
	_, err = rc.teamA.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: api.NASDeviceSpec{Name: "mine", Host: "mine",
		Protocols: []string{"nfs"}, ProxyFileServerIDs: []string{proxy1.ID}, Group: "team-a"}})
	wantRefused(t, "a group admin creating a NAS device", err, http.StatusForbidden, "")

	// An NFS-only device, of team-b, made by an operator.
	nfsOnly, err := rc.operator.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: api.NASDeviceSpec{Name: "exports",
		Host: "192.0.2.20", Protocols: []string{"nfs"}, NFSUID: 0, NFSMountPort: 20048, ProxyFileServerIDs: []string{"proxy-2"}, Group: "team-b"}})
	if err != nil || nfsOnly.HasSMBPassword || nfsOnly.HasSMBKeytab {
		t.Fatalf("NFS-only device: %+v %v", nfsOnly, err)
	}
	if _, sealed := nasRow(t, srv, nfsOnly.ID); sealed != nil {
		t.Fatal("an NFS-only device has sealed credentials")
	}

	// Shares: the protocol must be one the device serves.
	share := api.NASShareSpec{Name: "projects", NASDeviceID: "filer", Protocol: api.ProtocolSMB, Share: "projects", Path: "2024/q1",
		Include: []string{"**/*.docx"}, Exclude: []string{"~$*", "/tmp/**"}, PolicyID: h.policyID, StorageID: h.storageID}
	_, err = c.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: api.NASShareSpec{Name: "smb-on-nfs", NASDeviceID: nfsOnly.ID,
		Protocol: api.ProtocolSMB, Share: "projects", PolicyID: h.policyID, StorageID: h.storageID}})
	if e := wantRefused(t, "an SMB share of an NFS-only device", err, http.StatusUnprocessableEntity, "protocol"); e != nil &&
		!strings.Contains(e.Message, `serves [nfs], not "smb"`) {
		t.Errorf("refusal of the SMB share: %s", e.Message)
	}
	for _, tc := range []struct {
		what   string
		change func(*api.NASShareSpec)
		status int
		field  string
	}{
		{"an SMB share with a slash", func(s *api.NASShareSpec) { s.Share = "projects/2024" }, 400, "share"},
		{"a relative NFS export", func(s *api.NASShareSpec) { s.Protocol, s.NASDeviceID, s.Share = "nfs", nfsOnly.ID, "export" }, 400, "share"},
		{"an absolute path", func(s *api.NASShareSpec) { s.Path = "/2024" }, 400, "path"},
		{"a path going up", func(s *api.NASShareSpec) { s.Path = "../other" }, 400, "path"},
		{"a bad glob", func(s *api.NASShareSpec) { s.Include = []string{"[a-"} }, 400, "include[0]"},
		{"an unknown protocol", func(s *api.NASShareSpec) { s.Protocol = "afp" }, 400, "protocol"},
		{"a device that does not exist", func(s *api.NASShareSpec) { s.NASDeviceID = "ghost" }, 422, "nas_device_id"},
		{"a policy that does not exist", func(s *api.NASShareSpec) { s.PolicyID = "ghost" }, 422, "policy_id"},
	} {
		bad := share
		bad.Name = "bad"
		tc.change(&bad)
		_, err := c.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: bad})
		wantRefused(t, tc.what, err, tc.status, tc.field)
	}

	// A group admin of team-a keeps shares of team-a's device, which
	// take the device's group, and none of team-b's.
	projects, err := rc.teamA.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: share})
	if err != nil || projects.NASDeviceID != dev.ID || projects.Group != "team-a" || projects.Path != "2024/q1" {
		t.Fatalf("share of team-a: %+v %v", projects, err)
	}
	_, err = rc.teamA.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: api.NASShareSpec{Name: "theirs", NASDeviceID: nfsOnly.ID,
		Protocol: api.ProtocolNFS, Share: "/export/home", PolicyID: h.policyID, StorageID: h.storageID}})
	wantRefused(t, "a group admin's share of another group's device", err, http.StatusForbidden, "nas_device_id")
	home, err := c.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: api.NASShareSpec{Name: "home", NASDeviceID: nfsOnly.ID,
		Protocol: api.ProtocolNFS, Share: "/export/home", PolicyID: h.policyID, StorageID: h.storageID}})
	if err != nil || home.Group != "team-b" {
		t.Fatalf("NFS share: %+v %v", home, err)
	}
	err = rc.teamA.NASShares().Delete(ctx, home.ID)
	wantRefused(t, "a group admin deleting another group's share", err, http.StatusForbidden, "group")

	// The device's group moves, and its shares follow without a new
	// version; the group admin of team-a then loses them.
	dev4, err := c.NASDevices().Get(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec.Group = "team-c"
	if _, err := c.NASDevices().Update(ctx, dev.ID, dev4.Version, api.NASDeviceRequest{NASDeviceSpec: spec}); err != nil {
		t.Fatal(err)
	}
	moved, err := c.NASShares().Get(ctx, projects.ID)
	if err != nil || moved.Group != "team-c" || moved.Version != projects.Version {
		t.Fatalf("share after its device moved to team-c: %+v %v", moved, err)
	}
	_, err = rc.teamA.NASShares().Update(ctx, moved.ID, moved.Version, api.NASShareRequest{NASShareSpec: share})
	wantRefused(t, "a group admin updating a share whose device left its group", err, http.StatusForbidden, "group")

	// What is in use is not deleted: the device a share uses, the file
	// server a device has as its proxy, the policy and storage a share
	// uses.
	for _, tc := range []struct {
		what string
		del  func() error
		want string
	}{
		{"the device", func() error { return c.NASDevices().Delete(ctx, dev.ID) }, `the NAS device is used by NAS share "projects"`},
		{"the proxy", func() error { return c.FileServers().Delete(ctx, proxy1.ID) }, `the file server is used by NAS device "filer"`},
		{"the policy", func() error { return c.Policies().Delete(ctx, h.policyID) }, `NAS share "home"`},
		{"the storage", func() error { return c.Storages().Delete(ctx, h.storageID) }, `NAS share "home"`},
	} {
		if e := wantRefused(t, "deleting "+tc.what+" in use", tc.del(), http.StatusConflict, ""); e != nil && !strings.Contains(e.Message, tc.want) {
			t.Errorf("deleting %s in use: %q, want it to say %s", tc.what, e.Message, tc.want)
		}
	}

	// Restores: the nas block's fields are checked, and it takes no file
	// restore's target.
	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"point_id":"p","nas":{"path":"/restored"}}`, "nas.path"},
		{`{"point_id":"p","nas":{"conflict":"merge"}}`, "nas.conflict"},
		{`{"point_id":"p","target_path":"/srv","nas":{}}`, "nas"},
		{`{"point_id":"p","conflict":"skip","nas":{}}`, "nas"},
	} {
		if status, e := rawCall(t, srv, http.MethodPost, "/v1/restores", srv.AdminToken, tc.body, nil); status != 400 || e.Field != tc.field {
			t.Errorf("restore %s: %d %+v, want 400 naming %s", tc.body, status, e, tc.field)
		}
	}

	// Once the shares are gone, so can the device and its proxy be.
	for _, id := range []string{projects.ID, home.ID} {
		if err := c.NASShares().Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.NASDevices().Delete(ctx, dev.ID); err != nil {
		t.Fatalf("deleting the unused device: %v", err)
	}
	if err := c.FileServers().Delete(ctx, proxy1.ID); err != nil {
		t.Fatalf("deleting the file server no device uses: %v", err)
	}
	resp, err := http.Get(srv.URL + "/v1/nas-devices")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("listing NAS devices without a token: %d", resp.StatusCode)
		}
	}
}
