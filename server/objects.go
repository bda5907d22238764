package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// objectKind adapts one API collection to the generic CRUD handlers below,
// so every collection gets the same idempotent create, version checks,
// pagination and error mapping.
type objectKind[Req any, Obj any] struct {
	db    *db.DB
	label string // singular, for messages
	table db.Table
	// prepare normalizes and validates a request and returns what to store.
	// prev is the stored object on update, nil on create.
	prepare func(ctx context.Context, req *Req, prev *db.Object) (stored storedObject, err error)
	// present turns a row into the API answer.
	present func(o db.Object) (Obj, error)
	// version is the optimistic-concurrency version carried in the body.
	version func(req *Req) *int64
	// afterCreate, if set, runs once a new object is stored and may add
	// to the answer (a one-time activation token, say).
	afterCreate func(ctx context.Context, o db.Object, answer *Obj) error
	// beforeDelete, if set, may refuse a delete (an object still in use).
	beforeDelete func(ctx context.Context, o db.Object) error
	// destroy, if set, runs once beforeDelete and the version check
	// passed, before the row goes: what deleting the object implies (a
	// storage's forced destroy). A non-nil answer is sent with 200 instead
	// of 204, so that the client can say what was removed.
	destroy func(ctx context.Context, o db.Object) (answer any, err error)
	// afterDelete, if set, runs once the object is deleted.
	afterDelete func(ctx context.Context, o db.Object)
	// afterUpdate, if set, runs once an update is stored.
	afterUpdate func(ctx context.Context, o db.Object)
}

type storedObject struct {
	name   string
	spec   []byte
	sealed []byte
}

// readCreate decodes and prepares a create request. A new object has no
// version yet, so a body that carries one is refused rather than ignored.
func (k objectKind[Req, Obj]) readCreate(w http.ResponseWriter, r *http.Request) (storedObject, error) {
	var req Req
	if err := decodeJSON(w, r, &req); err != nil {
		return storedObject{}, err
	}
	if v := k.version(&req); v != nil {
		return storedObject{}, api.FieldError("version", "is set by the server; leave it out when creating a %s", k.label)
	}
	return k.prepare(r.Context(), &req, nil)
}

func (k objectKind[Req, Obj]) create(w http.ResponseWriter, r *http.Request) {
	st, err := k.readCreate(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	o, created, err := k.db.Create(r.Context(), k.table, st.name, st.spec, st.sealed, r.Header.Get("Idempotency-Key"))
	if err != nil {
		writeError(w, r, k.mapErr(err, ""))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	obj, err := k.present(o)
	if err == nil && created && k.afterCreate != nil {
		err = k.afterCreate(r.Context(), o, &obj)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(o.Version))
	writeJSON(w, status, obj)
}

func (k objectKind[Req, Obj]) get(w http.ResponseWriter, r *http.Request) {
	o, err := k.db.Get(r.Context(), k.table, r.PathValue("id"))
	if err != nil {
		writeError(w, r, k.mapErr(err, r.PathValue("id")))
		return
	}
	k.answer(w, r, http.StatusOK, o)
}

func (k objectKind[Req, Obj]) update(w http.ResponseWriter, r *http.Request) {
	expect, err := ifMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req Req
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if v := k.version(&req); v != nil {
		if *v < 1 {
			writeError(w, r, api.FieldError("version", "must be a positive object version, got %d", *v))
			return
		}
		if expect != nil && *expect != *v {
			writeError(w, r, api.FieldError("version", "is %d but If-Match says %d: send one or make them agree", *v, *expect))
			return
		}
		expect = v
	}
	prev, err := k.db.Get(r.Context(), k.table, r.PathValue("id"))
	if err != nil {
		writeError(w, r, k.mapErr(err, r.PathValue("id")))
		return
	}
	if expect != nil && *expect != prev.Version {
		writeError(w, r, api.StaleVersion(k.label, *expect, prev.Version))
		return
	}
	st, err := k.prepare(r.Context(), &req, &prev)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The version read above guards the write, so a change that lands
	// between our read and our write is caught even without If-Match.
	o, err := k.db.Update(r.Context(), k.table, prev.ID, &prev.Version, st.name, st.spec, st.sealed)
	if err != nil {
		var stale *db.StaleError
		if errors.As(err, &stale) {
			sent := prev.Version
			if expect != nil {
				sent = *expect
			}
			err = api.StaleVersion(k.label, sent, stale.Current)
		}
		writeError(w, r, k.mapErr(err, prev.ID))
		return
	}
	if k.afterUpdate != nil {
		k.afterUpdate(r.Context(), o)
	}
	k.answer(w, r, http.StatusOK, o)
}

func (k objectKind[Req, Obj]) delete(w http.ResponseWriter, r *http.Request) {
	expect, err := ifMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	prev, err := k.db.Get(r.Context(), k.table, r.PathValue("id"))
	if err != nil {
		writeError(w, r, k.mapErr(err, r.PathValue("id")))
		return
	}
	if k.beforeDelete != nil {
		if err := k.beforeDelete(r.Context(), prev); err != nil {
			writeError(w, r, err)
			return
		}
	}
	var answer any
	if k.destroy != nil {
		if expect != nil && *expect != prev.Version {
			writeError(w, r, api.StaleVersion(k.label, *expect, prev.Version))
			return
		}
		if answer, err = k.destroy(r.Context(), prev); err != nil {
			writeError(w, r, err)
			return
		}
	}
	if err := k.db.Delete(r.Context(), k.table, prev.ID, expect); err != nil {
		var stale *db.StaleError
		if errors.As(err, &stale) {
			err = api.StaleVersion(k.label, *expect, stale.Current)
		}
		writeError(w, r, k.mapErr(err, prev.ID))
		return
	}
	if k.afterDelete != nil {
		k.afterDelete(r.Context(), prev)
	}
	if answer != nil {
		writeJSON(w, http.StatusOK, answer)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (k objectKind[Req, Obj]) list(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rows, err := k.db.List(r.Context(), k.table, after, limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, err := pageOf(rows, limit, func(o db.Object) string { return o.Name }, k.present)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (k objectKind[Req, Obj]) answer(w http.ResponseWriter, r *http.Request, status int, o db.Object) {
	obj, err := k.present(o)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(o.Version))
	writeJSON(w, status, obj)
}

func (k objectKind[Req, Obj]) mapErr(err error, id string) error {
	switch {
	case errors.Is(err, db.ErrNotFound):
		return api.NotFound(k.label, id)
	case errors.Is(err, db.ErrNameTaken):
		return api.Conflict("name", "another %s already has this name", k.label)
	}
	return err
}
