// Package repo is Haven's deduplicating, encrypted repository: one per
// storage. It ties the store (where sealed packs live), the index (which
// chunk is where, in PostgreSQL) and the storage's keys together, and offers
// the two pipelines every workload uses: a concurrent writer that stores
// only chunks the index lacks, and a parallel reader.
package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// Object name prefixes in the store.
const (
	PacksPrefix  = "packs/"
	KeysPrefix   = "keys/"
	PointsPrefix = "points/"
)

// Options tune a repository's pipelines.
type Options struct {
	// PackSize is the target size of a pack object.
	PackSize int
	// Uploads bounds packs being uploaded at once; with the pack being
	// filled, it also bounds the writer's memory.
	Uploads int
	// PackBuffers, if above 0, gives the repository a budget of that many
	// pack buffers of its own; 0 shares the process's (DefaultPackBuffers),
	// which bounds the memory of all backups at once.
	PackBuffers int
	// Workers bounds concurrent sealing and reading; 0 means GOMAXPROCS.
	Workers int
	// TouchGranularity is how stale a chunk's touch time must be before Has
	// (and a writer's dedup lookup) renews it; 0 keeps the index's default
	// (10 minutes). Every process using the repository must agree on it, and
	// GC's grace period must exceed it.
	TouchGranularity time.Duration
}

// DefaultPackSize is "tens of MiB": big enough that per-object costs on S3
// vanish, small enough that a repack or a verify of one pack is quick.
const DefaultPackSize = 16 << 20

// DefaultUploads is how many packs a writer uploads at once by default.
const DefaultUploads = 2

func (o *Options) defaults() {
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	if o.Uploads <= 0 {
		o.Uploads = DefaultUploads
	}
}

// Repository is an open repository.
type Repository struct {
	id     string
	store  store.Store
	index  *index.Index
	sealer *format.Sealer
	hasher *format.Hasher
	opts   Options
	packs  *packBudget
}

// Sentinel errors of the index, under the repository's name so that code
// outside the engine never imports the index package. Each is the index's
// own value, so errors.Is matches it under either name.
var (
	// ErrParentGone: the parent point given to BeginSession or NewWriter
	// no longer exists (retention or a delete took it). Start a full
	// backup instead, with no parent.
	ErrParentGone = index.ErrParentGone
	// ErrNoRoot: Root was asked for a point that was never committed in
	// this repository, or has been deleted.
	ErrNoRoot = index.ErrNoRoot
	// ErrSessionExpired: a session missed its heartbeats for longer than
	// SessionTimeout. GC may have swept chunks it relied on, so it can no
	// longer commit; the backup must run again.
	ErrSessionExpired = index.ErrSessionExpired
	// ErrGCRunning: another garbage collection of the repository holds its
	// GC lock, which Rebuild needs too; try again once it is done.
	ErrGCRunning = index.ErrGCRunning
)

// SessionTimeout is how long a backup session lives without a Heartbeat.
// An owner that keeps a session open heartbeats well within it.
const SessionTimeout = index.SessionTimeout

// Migrate brings the schema of the chunk index in pool up to date. Run it
// before opening any repository on pool. Several processes may run it at
// once: migrations are serialized by an advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return index.Migrate(ctx, pool)
}

// OpenOn opens repository repoID (its storage's id) whose chunk index lives
// in pool, migrated by Migrate. It is Open for callers outside the engine,
// which never handle the index itself.
func OpenOn(ctx context.Context, st store.Store, pool *pgxpool.Pool, repoID string, master format.Wrapper, opts Options) (*Repository, error) {
	return Open(ctx, st, index.New(pool, repoID), master, opts)
}

// Open opens the repository of a storage, creating its keys on first use.
// The keys live in the store, wrapped by the master key, under
// keys/<master key id>. Two servers opening a fresh storage at once agree
// on one set of keys: creation runs under an advisory lock. A non-zero
// opts.TouchGranularity is set on ix.
func Open(ctx context.Context, st store.Store, ix *index.Index, master format.Wrapper, opts Options) (*Repository, error) {
	opts.defaults()
	if opts.TouchGranularity > 0 {
		ix.SetTouchGranularity(opts.TouchGranularity)
	}
	var keys format.Keys
	err := pgx.BeginFunc(ctx, ix.Pool(), func(tx pgx.Tx) error {
		h := fnv.New64a()
		h.Write([]byte("haven-repo-init:" + ix.RepoID()))
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
			return err
		}
		var err error
		keys, err = loadOrCreateKeys(ctx, st, ix.RepoID(), master)
		return err
	})
	if err != nil {
		return nil, err
	}
	return newRepository(st, ix, keys, opts)
}

func newRepository(st store.Store, ix *index.Index, keys format.Keys, opts Options) (*Repository, error) {
	sealer, err := format.NewSealer(keys.Data)
	if err != nil {
		return nil, err
	}
	packs := processPackBuffers
	if opts.PackBuffers > 0 {
		packs = newPackBudget(opts.PackBuffers)
	}
	return &Repository{id: ix.RepoID(), store: st, index: ix, sealer: sealer, hasher: format.NewHasher(keys.ID), opts: opts, packs: packs}, nil
}

// ErrNoRepository: OpenExisting found no keys/ object in the store, so no
// Haven repository lives there.
var ErrNoRepository = errors.New("the store holds no Haven repository (it has no keys/ object)")

// WrongMasterKeyError: the store's keys are wrapped by other master keys
// than the one given, so nothing in the store can be opened with it.
type WrongMasterKeyError struct {
	// Want are the ids of the master keys that wrap the store's keys; Have
	// is the id of the one given.
	Want []string
	Have string
}

func (e *WrongMasterKeyError) Error() string {
	return fmt.Sprintf("the storage's keys are wrapped by master key %s, but this server's master key is %s: use the master key file the storage was created with",
		strings.Join(e.Want, ", "), e.Have)
}

// OpenExisting opens the repository that st already holds, found by its
// keys object alone: the repository's id is read from the keys the master
// key unwraps, so no catalog needs to know the storage (an import after
// the catalog was lost). It never creates keys: a store with none is
// ErrNoRepository, one whose keys another master key wraps is a
// *WrongMasterKeyError. The chunk index in pool (migrated by Migrate) may
// be empty; Rebuild fills it from the store.
func OpenExisting(ctx context.Context, st store.Store, pool *pgxpool.Pool, master format.Wrapper, opts Options) (*Repository, error) {
	opts.defaults()
	sealed, err := readObject(ctx, st, KeysPrefix+master.ID())
	if errors.Is(err, store.ErrNotFound) {
		others, err := keyObjects(ctx, st)
		if err != nil {
			return nil, err
		}
		if len(others) == 0 {
			return nil, ErrNoRepository
		}
		return nil, &WrongMasterKeyError{Want: others, Have: master.ID()}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the repository keys: %w", err)
	}
	repoID, keys, err := format.OpenKeys(master, sealed)
	if err != nil {
		return nil, err
	}
	ix := index.New(pool, repoID)
	if opts.TouchGranularity > 0 {
		ix.SetTouchGranularity(opts.TouchGranularity)
	}
	return newRepository(st, ix, keys, opts)
}

// keyObjects lists the master key ids the store's keys are wrapped by.
func keyObjects(ctx context.Context, st store.Store) ([]string, error) {
	var ids []string
	err := st.List(ctx, KeysPrefix, func(o store.ObjectInfo) error {
		ids = append(ids, strings.TrimPrefix(o.Name, KeysPrefix))
		return nil
	})
	return ids, err
}

func loadOrCreateKeys(ctx context.Context, st store.Store, repoID string, master format.Wrapper) (format.Keys, error) {
	name := KeysPrefix + master.ID()
	sealed, err := readObject(ctx, st, name)
	if err == nil {
		return format.UnwrapKeys(master, repoID, sealed)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return format.Keys{}, err
	}
	others, err := keyObjects(ctx, st)
	if err != nil {
		return format.Keys{}, err
	}
	if len(others) > 0 {
		return format.Keys{}, &WrongMasterKeyError{Want: others, Have: master.ID()}
	}
	keys := format.NewKeys()
	blob := format.WrapKeys(master, repoID, keys)
	if err := st.Put(ctx, name, bytes.NewReader(blob), int64(len(blob)), store.PutOptions{}); err != nil {
		return format.Keys{}, fmt.Errorf("storing repository keys: %w", err)
	}
	return keys, nil
}

// RewrapKeys re-seals a storage's keys under a new master key and removes
// the old wrapping. No data object is touched: this is the whole of a
// master key rotation for one storage.
func RewrapKeys(ctx context.Context, st store.Store, repoID string, oldKey, newKey format.Wrapper) error {
	sealed, err := readObject(ctx, st, KeysPrefix+oldKey.ID())
	if err != nil {
		return fmt.Errorf("reading keys wrapped by %s: %w", oldKey.ID(), err)
	}
	keys, err := format.UnwrapKeys(oldKey, repoID, sealed)
	if err != nil {
		return err
	}
	blob := format.WrapKeys(newKey, repoID, keys)
	if err := st.Put(ctx, KeysPrefix+newKey.ID(), bytes.NewReader(blob), int64(len(blob)), store.PutOptions{}); err != nil {
		return err
	}
	// Prove the new wrapping opens before dropping the old one.
	check, err := readObject(ctx, st, KeysPrefix+newKey.ID())
	if err != nil {
		return err
	}
	if _, err := format.UnwrapKeys(newKey, repoID, check); err != nil {
		return err
	}
	if oldKey.ID() == newKey.ID() {
		return nil
	}
	return st.Delete(ctx, KeysPrefix+oldKey.ID())
}

func readObject(ctx context.Context, st store.Store, name string) ([]byte, error) {
	rc, err := st.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// ID is the repository's id (its storage's id).
func (r *Repository) ID() string { return r.id }

// Index is the repository's chunk index. Code outside the engine uses the
// repository's own methods (Has, Root, BeginSession, ...) instead.
func (r *Repository) Index() *index.Index { return r.index }

// Has reports, in one round trip, which of ids the repository already
// stores: found ids map to true, missing ones are absent. It also renews the
// touch time of found chunks whose touch is older than the touch
// granularity, so a backup session open now may reference them without
// storing them again: GC, whose grace exceeds the granularity, keeps them
// until the session commits. A chunk GC sweeps concurrently is reported
// missing, never found-then-lost.
func (r *Repository) Has(ctx context.Context, ids []format.ID) (map[format.ID]bool, error) {
	return r.index.Has(ctx, ids)
}

// Store is where the repository's objects live.
func (r *Repository) Store() store.Store { return r.store }

// Hash returns the chunk id of data under this repository's id key.
func (r *Repository) Hash(data []byte) format.ID { return r.hasher.Sum(data) }

// Sealer opens and seals this repository's blobs.
func (r *Repository) Sealer() *format.Sealer { return r.sealer }

// PackName is the store object name of a pack.
func PackName(id format.ID) string { return PacksPrefix + id.String() }

// IDKey is the key chunk ids are computed under. Agents receive it to name
// and deduplicate chunks before transfer; it reveals nothing of the data
// key, which never leaves the server.
func (r *Repository) IDKey() [32]byte { return r.hasher.Key() }
