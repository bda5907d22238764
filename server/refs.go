package server

import (
	"context"
	"errors"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// objectRef is a reference in a spec to another object (by id or by
// name), under the request field that holds it.
type objectRef struct {
	field string
	id    *string
	table db.Table
}

// resolveRefs looks up each reference, refusing one that names nothing
// (422 naming its field), and rewrites it to the object's id: specs store
// ids even when a request named objects by name. It returns the objects,
// in the references' order.
func resolveRefs(ctx context.Context, d *db.DB, refs ...objectRef) ([]db.Object, error) {
	out := make([]db.Object, len(refs))
	for i, ref := range refs {
		o, err := d.Get(ctx, ref.table, *ref.id)
		if errors.Is(err, db.ErrNotFound) {
			return nil, api.Unprocessable(ref.field, "%q does not exist", *ref.id)
		} else if err != nil {
			return nil, err
		}
		*ref.id, out[i] = o.ID, o
	}
	return out, nil
}
