package repo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// selfEncoded encodes and decodes itself, as files.Entry does, counting
// the calls: the manifest hands such entries their own bytes.
type selfEncoded struct {
	Name string `json:"name"`
	Body string `json:"body"`
}

var selfCalls struct{ marshal, unmarshal int }

type selfWire selfEncoded

func (e selfEncoded) MarshalJSON() ([]byte, error) {
	selfCalls.marshal++
	return json.Marshal(selfWire(e))
}

func (e *selfEncoded) UnmarshalJSON(b []byte) error {
	selfCalls.unmarshal++
	return json.Unmarshal(b, (*selfWire)(e))
}

// TestManifestRoundTrip writes entries of every size, the longest far
// beyond the reader's 64 KiB buffer, some of a type that encodes itself
// and some of one that does not, and reads them back equal; the tree
// chunks are the bytes json.Marshal gives, one line each (so that an
// unchanged backup's tree chunks stay what they were and deduplicate);
// and a damaged entry is reported as corrupt.
func TestManifestRoundTrip(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	r := env.Repo
	ctx := context.Background()
	var want []selfEncoded
	for i, n := range []int{0, 10, 1000, 70 << 10, 300 << 10, 5, 200 << 10} {
		want = append(want, selfEncoded{Name: strings.Repeat("n", i+1), Body: strings.Repeat("<b&>", n/4)})
	}
	w, err := r.NewWriter(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	mw := w.NewManifest("test")
	var lines bytes.Buffer
	selfCalls.marshal, selfCalls.unmarshal = 0, 0
	for i, e := range want {
		var entry any = e
		if i%2 == 1 {
			entry = selfWire(e) // no methods of its own
		}
		before := selfCalls.marshal
		if err := mw.Add(ctx, entry); err != nil {
			t.Fatal(err)
		}
		added := selfCalls.marshal - before
		if _, self := entry.(json.Marshaler); self && added != 1 || !self && added != 0 {
			t.Errorf("entry %d: MarshalJSON ran %d times in Add", i, added)
		}
		b, _ := json.Marshal(entry)
		lines.Write(b)
		lines.WriteByte('\n')
	}
	rootID, err := mw.Close(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, "p", rootID); err != nil {
		t.Fatal(err)
	}
	root, err := repo.ReadRoot(ctx, r, rootID)
	if err != nil {
		t.Fatal(err)
	}
	var stored []byte
	for _, id := range root.Tree {
		if err := r.Load(ctx, []format.ID{id}, func(_ int, data []byte) error { stored = append(stored, data...); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(stored, lines.Bytes()) {
		t.Errorf("the tree chunks hold %d bytes that differ from json.Marshal's lines (%d bytes)", len(stored), lines.Len())
	}
	m, err := r.OpenManifest(ctx, rootID)
	if err != nil {
		t.Fatal(err)
	}
	selfCalls.unmarshal = 0
	for i := 0; ; i++ {
		var got selfEncoded
		err := m.Next(&got)
		if errors.Is(err, io.EOF) {
			if i != len(want) {
				t.Fatalf("read %d entries, wrote %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if got != want[i] {
			t.Errorf("entry %d: read %q (%d bytes), wrote %q (%d bytes)", i, got.Name, len(got.Body), want[i].Name, len(want[i].Body))
		}
	}
	if selfCalls.unmarshal != len(want) {
		t.Errorf("UnmarshalJSON ran %d times for %d entries", selfCalls.unmarshal, len(want))
	}

	// A damaged line: the manifest says so.
	w2, err := r.NewWriter(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	bad := w2.NewManifest("test")
	if err := bad.Add(ctx, json.RawMessage(`{"name":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := bad.Add(ctx, rawLine(`{"name": "b", "body": tru}`)); err != nil {
		t.Fatal(err)
	}
	badRoot, err := bad.Close(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Committing reads the manifest through: the damaged line fails it.
	if err := w2.Commit(ctx, "q", badRoot); !errors.Is(err, repo.ErrPointIncomplete) || !strings.Contains(err.Error(), "manifest entry") {
		t.Errorf("committing a manifest with a damaged entry: %v, want repo.ErrPointIncomplete naming the entry", err)
	}
	w2.Abort(ctx)
}

// rawLine is a manifest line written as it is, valid JSON or not.
type rawLine string

func (l rawLine) MarshalJSON() ([]byte, error) { return []byte(l), nil }
