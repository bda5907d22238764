package api_test

import (
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestRuleMatcher: selectors combine with AND, alternatives within folders
// and tags with OR, and exclusions win.
func TestRuleMatcher(t *testing.T) {
	const uuid = "502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69"
	vm := api.VM{Name: "db-07", Folder: "/DC0/vm/prod/db", Tags: []string{"env:prod", "backup:gold"}, InstanceUUID: uuid}
	for name, tc := range map[string]struct {
		rule api.VMProtectionRuleSpec
		want bool
	}{
		"folder below":          {api.VMProtectionRuleSpec{Folders: []string{"/DC0/vm/prod"}}, true},
		"folder prefix only":    {api.VMProtectionRuleSpec{Folders: []string{"/DC0/vm/pro"}}, false},
		"one of the folders":    {api.VMProtectionRuleSpec{Folders: []string{"/DC0/vm/dev", "/DC0/vm/prod/db"}}, true},
		"one of the tags":       {api.VMProtectionRuleSpec{Tags: []string{"backup:silver", "backup:gold"}}, true},
		"no tag":                {api.VMProtectionRuleSpec{Tags: []string{"backup:silver"}}, false},
		"name regex":            {api.VMProtectionRuleSpec{NameRegex: "^db-"}, true},
		"folder and bad name":   {api.VMProtectionRuleSpec{Folders: []string{"/DC0/vm/prod"}, NameRegex: "^web-"}, false},
		"excluded by name":      {api.VMProtectionRuleSpec{Tags: []string{"env:prod"}, ExcludeNameRegex: "-07$"}, false},
		"excluded by uuid case": {api.VMProtectionRuleSpec{Tags: []string{"env:prod"}, ExcludeInstanceUUIDs: []string{"502E71FA-1A5A-E3B6-4A0B-1D2F3C4B5A69"}}, false},
	} {
		if got := tc.rule.Matcher()(vm); got != tc.want {
			t.Errorf("%s: matched %v, want %v", name, got, tc.want)
		}
	}
}
