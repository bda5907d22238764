package server_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

// jsonFields lists the JSON member names a Go type encodes, flattening
// embedded structs as encoding/json does.
// Write-only members (tag api:"writeonly") are left out of answers.
func jsonFields(t reflect.Type, answer bool) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if answer && f.Tag.Get("api") == "writeonly" {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type, answer)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIDescribesTheTypes holds every API type to its schema in the
// document, member by member, in both directions.
func TestOpenAPIDescribesTheTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]any{
		"StorageRequest": api.StorageRequest{}, "Storage": api.Storage{}, "StorageDestroyed": api.StorageDestroyed{},
		"StorageImportRequest": api.StorageImportRequest{},
		"PolicyRequest":        api.PolicyRequest{}, "Policy": api.Policy{},
		"FullSchedule": api.FullSchedule{}, "IncrementalSchedule": api.IncrementalSchedule{},
		"Retention": api.Retention{}, "Tiering": api.Tiering{},
		"TokenRequest": api.TokenRequest{}, "Token": api.Token{}, "CreatedToken": api.CreatedToken{},
		"Health": api.Health{}, "VersionInfo": api.VersionInfo{},
		"StorageList": api.List[api.Storage]{}, "PolicyList": api.List[api.Policy]{}, "TokenList": api.List[api.Token]{},
		"AuditEntry": api.AuditEntry{}, "AuditList": api.List[api.AuditEntry]{},
		"FileServerRequest": api.FileServerRequest{}, "FileServer": api.FileServer{}, "FileServerActivation": api.FileServerActivation{},
		"FilesetRequest": api.FilesetRequest{}, "Fileset": api.Fileset{},
		"Job": api.Job{}, "JobProgress": api.JobProgress{}, "RestoreRequest": api.RestoreRequest{}, "Point": api.Point{},
		"IssueActivationRequest": api.IssueActivationRequest{}, "ActivateRequest": api.ActivateRequest{}, "Activation": api.Activation{}, "AgentWork": api.AgentWork{},
		"HasRequest": api.HasRequest{}, "HasResponse": api.HasResponse{}, "LoadRequest": api.LoadRequest{},
		"AgentProgress": api.AgentProgress{}, "AgentComplete": api.AgentComplete{}, "AgentFail": api.AgentFail{},
		"LegalHoldRequest": api.LegalHoldRequest{}, "BackupRequest": api.BackupRequest{}, "RetentionPreview": api.RetentionPreview{},
		"VCenterRequest": api.VCenterRequest{}, "VCenter": api.VCenter{}, "VM": api.VM{}, "VMDisk": api.VMDisk{},
		"VCenterList": api.List[api.VCenter]{}, "VMList": api.List[api.VM]{},
		"AWSTargetRequest": api.AWSTargetRequest{}, "AWSTarget": api.AWSTarget{}, "AWSTargetList": api.List[api.AWSTarget]{},
		"DRPlanRequest": api.DRPlanRequest{}, "DRPlan": api.DRPlan{}, "DRPlanList": api.List[api.DRPlan]{}, "DRPlanVM": api.DRPlanVM{},
		"DRTestNetwork": api.DRTestNetwork{}, "DRPlanStatus": api.DRPlanStatus{}, "DRVMStatus": api.DRVMStatus{}, "DRDiskCopy": api.DRDiskCopy{}, "DRJobRef": api.DRJobRef{},
		"DRTestRequest": api.DRTestRequest{}, "DRFailoverRequest": api.DRFailoverRequest{}, "DRCleanupRequest": api.DRCleanupRequest{}, "DRRun": api.DRRun{},
		"DRRunList": api.List[api.DRRun]{}, "DRRunMachine": api.DRRunMachine{}, "DRRunStep": api.DRRunStep{}, "DRResource": api.DRResource{}, "DRRunRef": api.DRRunRef{},
		"DRFailbackRequest": api.DRFailbackRequest{}, "DRFailback": api.DRFailback{}, "DRFailbackVM": api.DRFailbackVM{},
		"FileServerList": api.List[api.FileServer]{}, "FilesetList": api.List[api.Fileset]{}, "JobList": api.List[api.Job]{}, "PointList": api.List[api.Point]{},
		"PointEntry": api.PointEntry{}, "PointEntryList": api.List[api.PointEntry]{}, "PointChange": api.PointChange{},
		"PointChangeList": api.List[api.PointChange]{}, "PointMatches": api.PointMatches{}, "PointMatchesList": api.List[api.PointMatches]{},
		"RestorePlan": api.RestorePlan{}, "RestorePlanItem": api.RestorePlanItem{},
		"DatabaseServerRequest": api.DatabaseServerRequest{}, "DatabaseServer": api.DatabaseServer{}, "DatabaseDetected": api.DatabaseDetected{},
		"DatabaseSetRequest": api.DatabaseSetRequest{}, "DatabaseSet": api.DatabaseSet{},
		"DatabaseServerList": api.List[api.DatabaseServer]{}, "DatabaseSetList": api.List[api.DatabaseSet]{},
		"DatabaseRestore": api.DatabaseRestore{}, "DatabasePoint": api.DatabasePoint{}, "DatabaseRestorePoint": api.DatabaseRestorePoint{},
		"DatabaseVerification": api.DatabaseVerification{}, "DatabaseWork": api.DatabaseWork{}, "DatabaseResult": api.DatabaseResult{},
		"AgentTail": api.AgentTail{}, "AgentTailed": api.AgentTailed{},
		"NASDeviceRequest": api.NASDeviceRequest{}, "NASDevice": api.NASDevice{}, "NASDeviceList": api.List[api.NASDevice]{},
		"NASShareRequest": api.NASShareRequest{}, "NASShare": api.NASShare{}, "NASShareList": api.List[api.NASShare]{},
		"NASRestore": api.NASRestore{}, "NASWork": api.NASWork{},
	}
	for name, v := range types {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if got := jsonFields(reflect.TypeOf(v), !strings.HasSuffix(name, "Request")); !slices.Equal(got, props) {
			t.Errorf("schema %s has %v, Go type has %v", name, props, got)
		}
	}
	var errBody api.ErrorBody
	errBody.Error = &api.Error{}
	if got := jsonFields(reflect.TypeOf(*errBody.Error), true); !slices.Equal(got, []string{"code", "field", "message"}) {
		t.Errorf("error shape drifted: %v", got)
	}
}

// TestOpenAPIListsEveryRoute holds the server's routes and the document's
// operations to each other.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	srv := servertest.Start(t)
	served := srv.Server.Routes()
	sort.Strings(documented)
	sort.Strings(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.json documents\n%v\nthe server serves\n%v", documented, served)
	}
}
