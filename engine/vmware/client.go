// Package vmware is Haven's vSphere side: connecting to vCenter or ESXi,
// listing the VMs to protect, the snapshot lifecycle, changed block
// tracking (CBT) and reading a snapshot's disk bytes for engine/disk.
package vmware

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Config says how to reach and trust a vCenter or ESXi endpoint.
type Config struct {
	// URL is "host", "host:port" or "https://host[:port]/sdk".
	URL      string
	Username string
	Password string
	// Thumbprint pins the server certificate by its SHA-1 or SHA-256
	// fingerprint (hex, colons optional). A pinned thumbprint is enforced
	// even when the certificate is also trusted by a CA.
	Thumbprint string
	// CAFile is a PEM bundle of CAs to trust in addition to the system's.
	CAFile string
	// Insecure accepts any certificate. For labs only.
	Insecure bool
}

var (
	ErrBadCredentials = errors.New("vsphere: the user name or password was rejected")
	ErrUnreachable    = errors.New("vsphere: the server cannot be reached")
	ErrCertificate    = errors.New("vsphere: the server certificate is not trusted")
	ErrNotFound       = errors.New("vsphere: not found")
	ErrAmbiguous      = errors.New("vsphere: more than one VM matches")
)

// CertificateError is returned when the server certificate is untrusted or
// does not match the pinned thumbprint. It carries the certificate's actual
// thumbprints so the operator can verify and pin them.
type CertificateError struct {
	Host   string
	SHA1   string
	SHA256 string
	Reason string
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("vsphere: certificate of %s rejected (%s); its SHA-256 thumbprint is %s (SHA-1 %s): if that is the server's certificate, set thumbprint to it or provide its CA",
		e.Host, e.Reason, e.SHA256, e.SHA1)
}

func (e *CertificateError) Is(target error) bool { return target == ErrCertificate }

// Client is a logged-in vSphere session.
type Client struct {
	vc   *vim25.Client
	soap *soap.Client
	sm   *session.Manager
	// login is kept for the vAPI endpoint (tags), which has sessions of
	// its own that the SOAP session cannot open.
	login *url.Userinfo
}

// Vim returns the underlying govmomi client, for callers that need an API
// this package does not wrap yet.
func (c *Client) Vim() *vim25.Client { return c.vc }

// Connect opens and logs into a session.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	u, err := endpointURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Thumbprint != "" {
		// govmomi only consults a thumbprint when CA verification fails;
		// a pin must hold either way, so check it up front.
		if err := checkPin(ctx, u.Host, cfg.Thumbprint); err != nil {
			return nil, err
		}
	}
	sc := soap.NewClient(u, cfg.Insecure)
	if cfg.Thumbprint != "" {
		// Every connection (SOAP and datastore reads) checks the pin, and
		// only the pin: a pinned self-signed certificate needs no CA.
		pin := cfg.Thumbprint
		sc.DefaultTransport().DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: &tls.Config{
				InsecureSkipVerify: true,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 || !pinMatches(cs.PeerCertificates[0], pin) {
						return fmt.Errorf("host %q thumbprint does not match %q", addr, pin)
					}
					return nil
				},
			}}
			return d.DialContext(ctx, network, addr)
		}
	}
	if cfg.CAFile != "" {
		if err := sc.SetRootCAs(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("vsphere: loading CA file %s: %w", cfg.CAFile, err)
		}
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, classify(ctx, u.Host, err, cfg.Password)
	}
	sm := session.NewManager(vc)
	if err := sm.Login(ctx, url.UserPassword(cfg.Username, cfg.Password)); err != nil {
		if fault.Is(err, &types.InvalidLogin{}) {
			return nil, fmt.Errorf("%w (user %q at %s)", ErrBadCredentials, cfg.Username, u.Host)
		}
		return nil, classify(ctx, u.Host, err, cfg.Password)
	}
	return &Client{vc: vc, soap: sc, sm: sm, login: url.UserPassword(cfg.Username, cfg.Password)}, nil
}

// Logout ends the session.
func (c *Client) Logout(ctx context.Context) error { return c.sm.Logout(ctx) }

func endpointURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("vsphere: no URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("vsphere: bad URL: %w", err)
	}
	// Credentials travel only in Login, never in a URL that could end up
	// in an error message or a log.
	u.User = nil
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	return u, nil
}

// classify maps a transport failure onto the package's errors and keeps
// the password out of the message whatever the lower layers put in it.
func classify(ctx context.Context, host string, err error, password string) error {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	if soap.IsCertificateUntrusted(err) || errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) ||
		strings.Contains(err.Error(), "thumbprint does not match") {
		cert, perr := peerCertificate(ctx, host)
		if perr != nil {
			return fmt.Errorf("%w: %s", ErrCertificate, scrub(err.Error(), password))
		}
		return &CertificateError{Host: host, SHA1: soap.ThumbprintSHA1(cert), SHA256: soap.ThumbprintSHA256(cert), Reason: scrub(rootMessage(err), password)}
	}
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return fmt.Errorf("%w: %s: %s", ErrUnreachable, host, scrub(rootMessage(err), password))
	}
	return fmt.Errorf("vsphere: %s: %s", host, scrub(err.Error(), password))
}

func rootMessage(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "***")
}

func peerCertificate(ctx context.Context, host string) (*x509.Certificate, error) {
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "443")
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate presented")
	}
	return certs[0], nil
}

func checkPin(ctx context.Context, host, pin string) error {
	cert, err := peerCertificate(ctx, host)
	if err != nil {
		return classify(ctx, host, err, "")
	}
	if pinMatches(cert, pin) {
		return nil
	}
	return &CertificateError{Host: host, SHA1: soap.ThumbprintSHA1(cert), SHA256: soap.ThumbprintSHA256(cert),
		Reason: "thumbprint does not match the pinned " + pin}
}

func pinMatches(cert *x509.Certificate, pin string) bool {
	want := strings.ReplaceAll(canonicalThumbprint(pin), ":", "")
	return want == fmt.Sprintf("%X", sha1.Sum(cert.Raw)) || want == fmt.Sprintf("%X", sha256.Sum256(cert.Raw))
}

// canonicalThumbprint is govmomi's form: upper-case hex pairs joined by colons.
func canonicalThumbprint(tp string) string {
	h := strings.ToUpper(strings.NewReplacer(":", "", " ", "", "-", "").Replace(tp))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i:min(i+2, len(h))])
	}
	return b.String()
}
