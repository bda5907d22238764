package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// storagesImportArgs is the usage of `haven storages import`.
const storagesImportArgs = "NAME LOCATION"

// storagesImportHelp is its line in the usage.
var storagesImportHelp = strings.Join([]string{
	"disaster recovery: add a storage found with its recovery points to a server that lost its database",
	"(the server must run with the master key file the storage was created under); LOCATION is /PATH or",
	"s3://BUCKET[/PREFIX][?endpoint=URL&region=R&force_path_style=true&cold_storage_class=C], with S3 credentials",
	"in $HAVEN_STORAGE_ACCESS_KEY_ID and $HAVEN_STORAGE_SECRET_ACCESS_KEY (neither for ambient credentials)",
}, "\n"+strings.Repeat(" ", len("  haven ")+28+1))

// storagesImport runs `haven storages import`: the location is one
// argument, as a path or an s3:// URL, so the command needs no flags of
// its own in the shared flag set, and the secret never appears on a
// command line.
func storagesImport(ctx context.Context, e *clientEnv, args []string) error {
	spec, err := importSpec(args[0], args[1])
	if err != nil {
		return err
	}
	out, err := e.client.ImportStorage(ctx, api.StorageImportRequest{StorageSpec: spec})
	if err != nil || e.json {
		return e.show(out, err)
	}
	fmt.Fprintln(e.out, out.Message)
	for _, s := range out.Skipped {
		fmt.Fprintf(e.out, "  skipped %s: %s\n", s.Object, s.Reason)
	}
	return nil
}

// importSpec is the storage spec of a name and a location argument.
func importSpec(name, location string) (api.StorageSpec, error) {
	spec := api.StorageSpec{Name: name}
	if !strings.HasPrefix(location, "s3://") {
		spec.Kind, spec.Path = api.StorageFilesystem, location
		return spec, nil
	}
	u, err := url.Parse(location)
	if err != nil {
		return spec, fmt.Errorf("location %q: %v", location, err)
	}
	spec.Kind, spec.Bucket, spec.Prefix = api.StorageS3, u.Host, strings.Trim(u.Path, "/")
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			spec.Endpoint = v
		case "region":
			spec.Region = v
		case "cold_storage_class":
			spec.ColdStorageClass = v
		case "force_path_style":
			if spec.ForcePathStyle, err = strconv.ParseBool(v); err != nil {
				return spec, fmt.Errorf("location %q: force_path_style must be true or false", location)
			}
		default:
			return spec, fmt.Errorf("location %q: unknown setting %q (endpoint, region, force_path_style, cold_storage_class)", location, k)
		}
	}
	spec.AccessKeyID = os.Getenv("HAVEN_STORAGE_ACCESS_KEY_ID")
	spec.SecretAccessKey = os.Getenv("HAVEN_STORAGE_SECRET_ACCESS_KEY")
	return spec, nil
}
