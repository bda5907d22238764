package db

import "context"

// Each calls fn for every object of a collection, a page at a time.
func (d *DB) Each(ctx context.Context, t Table, fn func(Object) error) error {
	const page = 500
	after := ""
	for {
		rows, err := d.List(ctx, t, after, page)
		if err != nil {
			return err
		}
		for _, o := range rows {
			if err := fn(o); err != nil {
				return err
			}
		}
		if len(rows) < page {
			return nil
		}
		after = rows[len(rows)-1].Name
	}
}
