package cli

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// storagesImportCommand is `haven storages import NAME LOCATION`: the
// location is one argument, a path or an s3:// URL with the S3 settings as
// its query, and the credentials come from the environment, so that the
// secret never appears on a command line.
func storagesImportCommand(e *clientEnv) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "import NAME LOCATION",
		Short: "disaster recovery: add a storage found with its recovery points to a server that lost its database",
		Long: `Disaster recovery of the Haven server itself: add a storage, found with the
recovery points it holds, to a server whose database was lost. The server
must run with the master key file the storage was created under.

LOCATION is /PATH for a filesystem storage, or for S3
  s3://BUCKET[/PREFIX][?endpoint=URL&region=R&force_path_style=true&cold_storage_class=C]
with the credentials in $HAVEN_STORAGE_ACCESS_KEY_ID and
$HAVEN_STORAGE_SECRET_ACCESS_KEY (neither, for ambient credentials).

The server checks the location and adds the storage at once, then queues
an import job that indexes the storage's packs and adds its recovery
points; they list once it has succeeded. With --wait, follow the job to
its end, showing packs and points done. Importing the same location again
adds nothing (and finishes an import that failed). See "Recovering the
server itself" in the repository-format guide.

` + exitCodesHelp,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := importSpec(args[0], args[1])
			if err != nil {
				return usageErrorf("%v", err)
			}
			j, err := e.client.ImportStorage(cmd.Context(), api.StorageImportRequest{StorageSpec: spec})
			if err != nil {
				return e.show(j, err)
			}
			return e.finishJob(cmd.Context(), j, w)
		},
	}
	w.add(cmd)
	return cmd
}

// printImported prints what a storage import added, from the job's result.
func printImported(w io.Writer, j *api.Job) {
	if j.Kind != api.JobImport || j.Result == nil {
		return
	}
	r := j.Result
	fmt.Fprintf(w, "storage %s imported: %s recovery points added to the catalog (%s were there), %s deleted assets recorded, "+
		"%s packs with %s chunks indexed (%s were indexed); %s objects skipped\n", j.StorageID,
		r[api.ImportResultPoints], r[api.ImportResultKnownPoints], r[api.ImportResultAssets], r[api.ImportResultPacks],
		r[api.ImportResultChunks], r[api.ImportResultKnownPacks], r[api.ImportResultSkipped])
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
