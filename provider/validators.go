package provider

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// stringCheck is a plan-time validator built from a function that returns
// what is wrong with a value, or "" when nothing is. Null and unknown values
// are left to Terraform and to apply time.
type stringCheck struct {
	desc  string
	check func(string) string
}

var _ validator.String = stringCheck{}

func (v stringCheck) Description(context.Context) string         { return v.desc }
func (v stringCheck) MarkdownDescription(context.Context) string { return v.desc }

func (v stringCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if problem := v.check(req.ConfigValue.ValueString()); problem != "" {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid "+req.Path.String(),
			fmt.Sprintf("Attribute %s %s.", req.Path, problem))
	}
}

func httpURL() validator.String {
	return stringCheck{desc: "must be an http or https URL", check: func(s string) string {
		if err := checkHTTPURL(s); err != nil {
			return err.Error()
		}
		return ""
	}}
}

// objectName enforces the server's naming rule so a bad name fails at plan
// time instead of after other resources were already created.
func objectName() []validator.String {
	return []validator.String{
		stringvalidator.LengthBetween(1, api.MaxNameLength),
		stringvalidator.RegexMatches(api.NamePattern,
			"must start with a letter or digit and contain only letters, digits, '.', '_' and '-'"),
	}
}

// timeOfDay is the HH:MM format of schedule start times.
func timeOfDay() validator.String {
	return stringvalidator.RegexMatches(api.TimeOfDayPattern, "must be HH:MM on a 24-hour clock, such as 01:30 or 22:00")
}

// ianaTimezone accepts what the server accepts: a name time.LoadLocation
// knows, other than "Local", which would mean the server's own zone. The api
// package embeds the zone database, so this agrees with the server even on a
// host without /usr/share/zoneinfo.
func ianaTimezone() validator.String {
	return stringCheck{desc: "must be an IANA timezone name such as Europe/Paris or UTC", check: func(s string) string {
		if _, err := time.LoadLocation(s); err != nil || s == "Local" || s == "" {
			return fmt.Sprintf("must be an IANA timezone name such as Europe/Paris or UTC, got %q", s)
		}
		return ""
	}}
}

// storageFieldCheck validates one field of a storage with the server's own
// rules, by validating a spec in which every other field is known good. This
// keeps rules the api package does not export (such as the bucket pattern)
// in one place.
func storageFieldCheck(desc, field string, set func(*api.StorageSpec, string)) validator.String {
	return stringCheck{desc: desc, check: func(s string) string {
		spec := api.StorageSpec{Name: "plan-check"}
		set(&spec, s)
		spec.Normalize()
		if err := spec.Validate(true); err != nil && err.Field == field {
			return err.Message
		}
		return ""
	}}
}

func absolutePath() validator.String {
	return storageFieldCheck("must be a clean absolute path", "path", func(s *api.StorageSpec, v string) {
		s.Kind, s.Path = api.StorageFilesystem, v
	})
}

func bucketName() validator.String {
	return storageFieldCheck("must be a valid S3 bucket name", "bucket", func(s *api.StorageSpec, v string) {
		s.Kind, s.Bucket = api.StorageS3, v
	})
}

func s3Endpoint() validator.String {
	return storageFieldCheck("must be an http or https URL", "endpoint", func(s *api.StorageSpec, v string) {
		s.Kind, s.Bucket, s.Endpoint = api.StorageS3, "plan-check", v
	})
}

// keyPrefix rejects leading and trailing slashes because the server trims
// them: the value read back would differ from the configuration and
// Terraform would report an inconsistent result.
func keyPrefix() validator.String {
	return stringCheck{desc: "must not start or end with '/', nor contain '//' or '..'", check: func(s string) string {
		switch {
		case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/"):
			return fmt.Sprintf("must not start or end with '/': use %q", strings.Trim(s, "/"))
		case strings.Contains(s, "//") || strings.Contains(s, ".."):
			return "must not contain '//' or '..'"
		}
		return ""
	}}
}

// weekday accepts the lower-case day names the server stores. Mixed case is
// rejected rather than folded: the server would read back "mon" for "Mon"
// and Terraform would see a change on every plan.
func weekday() validator.String {
	return stringvalidator.OneOf(api.Weekdays...)
}

// objectID accepts only the id form of a reference. The server also takes
// names where it expects ids, but it stores the id: a name in the
// configuration would read back as an id and Terraform would report an
// inconsistent result after apply.
func objectID(kind, example string) validator.String {
	return stringCheck{desc: "must be the id of a " + kind, check: func(s string) string {
		if !uuidShaped.MatchString(s) {
			return fmt.Sprintf("must be the id of a %s (such as %s), not a name: got %q", kind, example, s)
		}
		return ""
	}}
}

// hostname mirrors the server's rule for file server host names.
func hostname() validator.String {
	return stringCheck{desc: "must be a host name", check: func(s string) string {
		if err := (&api.FileServerSpec{Name: "plan-check", Hostname: s, OS: api.OSLinux, Location: api.LocationServer}).Validate(); err != nil && err.Field == "hostname" {
			return err.Message
		}
		return ""
	}}
}

// includePath accepts the absolute paths the server accepts (POSIX, or a
// Windows drive path), and only clean POSIX ones: the server cleans them
// before storing, so "/srv//share/" would read back as "/srv/share".
func includePath() validator.String {
	return stringCheck{desc: "must be a clean absolute path", check: func(s string) string {
		spec := api.FilesetSpec{Name: "plan-check", FileServerID: "f", PolicyID: "p", StorageID: "s", IncludePaths: []string{s}}
		if err := spec.Validate(); err != nil && strings.HasPrefix(err.Field, "include_paths") {
			return fmt.Sprintf("must be an absolute path such as /srv/share or D:\\Shares, got %q", s)
		}
		if strings.HasPrefix(s, "/") && path.Clean(s) != s {
			return fmt.Sprintf("must be a clean path: use %q", path.Clean(s))
		}
		return ""
	}}
}

// excludeGlob applies the server's glob syntax check.
func excludeGlob() validator.String {
	return stringCheck{desc: "must be a valid glob pattern", check: func(s string) string {
		spec := api.FilesetSpec{Name: "plan-check", FileServerID: "f", PolicyID: "p", StorageID: "s",
			IncludePaths: []string{"/"}, ExcludeGlobs: []string{s}}
		if err := spec.Validate(); err != nil && strings.HasPrefix(err.Field, "exclude_globs") {
			return fmt.Sprintf("is not a valid glob pattern (doublestar syntax: path.Match's, plus ** and {a,b}): %q", s)
		}
		return ""
	}}
}

// restorePath is an absolute path on the restore side, where the server
// accepts only POSIX paths.
// restoreSelection checks one of a restore's paths: absolute, and
// Go-quoted when the name is not UTF-8.
func restoreSelection() validator.String {
	return stringCheck{desc: "must be an absolute path", check: func(s string) string {
		if !api.IsRestoreSelection(s) {
			return fmt.Sprintf("must be an absolute path starting with / (Go-quoted if the name is not UTF-8), got %q", s)
		}
		return ""
	}}
}

func restorePath() validator.String {
	return stringCheck{desc: "must be an absolute path", check: func(s string) string {
		if !api.IsAbsPath(s) {
			return fmt.Sprintf("must be an absolute path (/... or, on Windows, C:\\...), got %q", s)
		}
		return ""
	}}
}

// rfc3339Time accepts the timestamps the point filters take, such as
// 2026-03-01T00:00:00Z or 2026-03-01T01:00:00+01:00.
func rfc3339Time() validator.String {
	return stringCheck{desc: "must be an RFC 3339 time", check: func(s string) string {
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return fmt.Sprintf("must be an RFC 3339 time such as 2026-03-01T00:00:00Z, got %q", s)
		}
		return ""
	}}
}
