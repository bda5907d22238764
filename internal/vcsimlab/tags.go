package vcsimlab

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/types"
)

// TagVM attaches the tag "category:tag" to a VM through the vAPI tagging
// endpoint, creating the category (multiple tags per object, for VMs) and
// the tag if they do not exist yet.
func (l *Lab) TagVM(ctx context.Context, vmName, tag string) error {
	return l.withTags(ctx, vmName, tag, func(m *tags.Manager, ref types.ManagedObjectReference, category, name string) error {
		catID, err := findCategory(ctx, m, category)
		if err != nil {
			return err
		}
		if catID == "" {
			if catID, err = m.CreateCategory(ctx, &tags.Category{Name: category, Cardinality: "MULTIPLE",
				AssociableTypes: []string{"VirtualMachine"}}); err != nil {
				return err
			}
		}
		tagID, err := findTag(ctx, m, catID, name)
		if err != nil {
			return err
		}
		if tagID == "" {
			if tagID, err = m.CreateTag(ctx, &tags.Tag{Name: name, CategoryID: catID}); err != nil {
				return err
			}
		}
		return m.AttachTag(ctx, tagID, ref)
	})
}

// UntagVM detaches "category:tag" from a VM; a tag that is not attached,
// or does not exist, is not an error.
func (l *Lab) UntagVM(ctx context.Context, vmName, tag string) error {
	return l.withTags(ctx, vmName, tag, func(m *tags.Manager, ref types.ManagedObjectReference, category, name string) error {
		catID, err := findCategory(ctx, m, category)
		if err != nil || catID == "" {
			return err
		}
		tagID, err := findTag(ctx, m, catID, name)
		if err != nil || tagID == "" {
			return err
		}
		return m.DetachTag(ctx, tagID, ref)
	})
}

// withTags runs f for a VM and the parts of a "category:tag" with a vAPI
// session of its own: the lab's tag calls are rare, and a fresh session
// cannot have idled out in a long-running lab.
func (l *Lab) withTags(ctx context.Context, vmName, tag string,
	f func(m *tags.Manager, ref types.ManagedObjectReference, category, name string) error) error {
	category, name, ok := strings.Cut(tag, ":")
	if !ok || category == "" || name == "" {
		return fmt.Errorf("vcsimlab: tag %q is not \"category:tag\"", tag)
	}
	ref, err := l.VMRef(vmName)
	if err != nil {
		return err
	}
	if !l.vapi {
		return errors.New("vcsimlab: the lab was started without the vAPI endpoint (NoTagging)")
	}
	l.tagMu.Lock()
	defer l.tagMu.Unlock()
	rc := rest.NewClient(l.Client.Client)
	if err := rc.Login(ctx, url.UserPassword(l.Username, l.Password)); err != nil {
		return fmt.Errorf("vcsimlab: vAPI login: %w", err)
	}
	defer rc.Logout(context.WithoutCancel(ctx))
	if err := f(tags.NewManager(rc), ref, category, name); err != nil {
		return fmt.Errorf("vcsimlab: tagging: %w", err)
	}
	return nil
}

func findCategory(ctx context.Context, m *tags.Manager, name string) (string, error) {
	cats, err := m.GetCategories(ctx)
	if err != nil {
		return "", err
	}
	for _, c := range cats {
		if c.Name == name {
			return c.ID, nil
		}
	}
	return "", nil
}

func findTag(ctx context.Context, m *tags.Manager, categoryID, name string) (string, error) {
	ts, err := m.GetTagsForCategory(ctx, categoryID)
	if err != nil {
		return "", err
	}
	for _, t := range ts {
		if t.Name == name {
			return t.ID, nil
		}
	}
	return "", nil
}
