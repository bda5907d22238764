package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/time/rate"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/nas"
	"github.com/havenbackup/terraform-provider-haven/engine/nas/nfs"
	"github.com/havenbackup/terraform-provider-haven/engine/nas/smb"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// An agent named as a NAS device's proxy backs up and restores the
// device's shares: it speaks SMB or NFS to the NAS itself (engine/nas),
// mounts nothing and needs no root.

// nasDialer connects to the share of a NAS job.
func nasDialer(w *api.NASWork) nas.Dialer {
	return func(ctx context.Context) (nas.Share, error) {
		switch w.Protocol {
		case api.ProtocolSMB:
			return smb.Dial(ctx, smb.Config{Address: w.Host, Share: w.Share, User: w.SMBUser, Domain: w.SMBDomain,
				Password: w.SMBPassword, Keytab: w.SMBKeytab})
		case api.ProtocolNFS:
			// The host's port, if any, is SMB's; NFS has its own, or asks
			// the portmapper.
			addr := w.Host
			if h, _, err := net.SplitHostPort(w.Host); err == nil {
				addr = h
			}
			if w.NFSPort != 0 {
				addr = net.JoinHostPort(addr, strconv.Itoa(w.NFSPort))
			}
			return nfs.Dial(ctx, nfs.Config{Address: addr, MountPort: w.NFSMountPort, Export: w.Share, UID: w.NFSUID, GID: w.NFSGID})
		}
		return nil, fmt.Errorf("unknown NAS protocol %q", w.Protocol)
	}
}

func (a *agent) nasBackup(ctx context.Context, w *api.AgentWork, rep *reporter) (api.AgentComplete, error) {
	nw := w.NAS
	share, err := nasDialer(nw)(ctx)
	if err != nil {
		return api.AgentComplete{}, fmt.Errorf("connecting to %s: %w", nw.Source(), err)
	}
	defer share.Close()
	var limit *rate.Limiter
	if nw.ReadBytesPerS > 0 {
		// Bursts of up to a second's worth, at least one read's size.
		limit = rate.NewLimiter(rate.Limit(nw.ReadBytesPerS), int(max(nw.ReadBytesPerS, 1<<20)))
	}
	return a.captureTree(ctx, w, rep, func(remote *remote, opts files.CaptureOptions) (format.ID, files.CaptureStats, error) {
		return nas.Capture(ctx, remote, remote, share, nas.CaptureOptions{
			Path: nw.Path, Include: nw.Include, Exclude: nw.Exclude, Parent: opts.Parent, ReadLimit: limit, Source: nw.Source(),
			Warn: opts.Warn, Progress: opts.Progress, Totals: opts.Totals,
		})
	})
}

func (a *agent) nasRestore(ctx context.Context, w *api.AgentWork, rep *reporter) (api.AgentComplete, error) {
	root, remote, err := a.pointFor(ctx, w)
	if err != nil {
		return api.AgentComplete{}, err
	}
	nw := w.NAS
	st, err := nas.Restore(ctx, remote, root, nas.RestoreOptions{
		Target: nw.Target, Paths: w.Paths, Include: w.RestoreInclude, Exclude: w.RestoreExclude, Conflict: w.Conflict,
		Alternate: nw.Alternate, Resume: w.Resume, Dial: nasDialer(nw), Warn: rep.warn,
		Progress: func(n, b int64) { rep.progress(ctx, api.JobProgress{FilesDone: n, BytesDone: b}) },
	})
	if st.Resumed > 0 {
		rep.warn("", fmt.Errorf("resumed: %d files were already restored by an earlier attempt", st.Resumed))
	}
	if err != nil {
		if errors.Is(err, files.ErrIncomplete) {
			return api.AgentComplete{}, fmt.Errorf("%w: %v", err, st.Failed)
		}
		return api.AgentComplete{}, err
	}
	return api.AgentComplete{Progress: api.JobProgress{FilesDone: st.Files, BytesDone: st.Bytes}}, nil
}
