package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The DR guide's IAM policy is held to the code: every AWS operation the
// server's DR code can call must be allowed by it. The operations are
// found in the sources at test time, so an operation added to the code
// and not to the policy fails this test.

const (
	drGuide      = "../docs/guides/disaster-recovery.md"
	iamHeading   = "## IAM permissions"
	awsSDKPrefix = "github.com/aws/aws-sdk-go-v2/"
	stscredsPath = awsSDKPrefix + "credentials/stscreds"
)

// awsService is an AWS API client package Haven's DR code calls: its IAM
// prefix and its operations (the methods of its Client that take a context
// and an <Operation>Input). For these services an IAM action is named
// like the API operation.
type awsService struct {
	prefix string
	ops    map[string]bool
}

var drServices = map[string]*awsService{
	awsSDKPrefix + "service/ec2": {prefix: "ec2", ops: clientOperations(reflect.TypeOf(&ec2.Client{}))},
	awsSDKPrefix + "service/ebs": {prefix: "ebs", ops: clientOperations(reflect.TypeOf(&ebs.Client{}))},
	awsSDKPrefix + "service/sts": {prefix: "sts", ops: clientOperations(reflect.TypeOf(&sts.Client{}))},
}

// typesPackages hold the Tag and TagSpecification types: building them
// means tagging a resource in the call that creates it, which AWS
// authorizes as ec2:CreateTags (for EBS direct API snapshots too).
var typesPackages = []string{awsSDKPrefix + "service/ec2/types", awsSDKPrefix + "service/ebs/types"}

func clientOperations(client reflect.Type) map[string]bool {
	ops := map[string]bool{}
	for i := range client.NumMethod() {
		m := client.Method(i)
		// receiver, context, *<Op>Input, ...func(*Options)
		if m.Type.NumIn() != 4 || !m.Type.IsVariadic() {
			continue
		}
		in := m.Type.In(2)
		if in.Kind() == reflect.Pointer && in.Elem().Name() == m.Name+"Input" {
			ops[m.Name] = true
		}
	}
	return ops
}

// awsCall is an IAM action the code needs and where it was found.
type awsCall struct {
	action string
	at     string
}

// drAWSCalls parses the module's production sources (tests, test parts and
// the benchmark commands left out) that import the AWS SDK's EC2, EBS or
// STS packages, and returns the IAM actions they need: calls of client
// operations (direct, or through interfaces declaring them), paginators,
// role assumption through stscreds, and tagging on create. It also returns
// every string literal of those files and the tag keys replication puts on
// its snapshots.
func drAWSCalls(t *testing.T, root string) (calls []awsCall, literals map[string]bool, copyTags []string) {
	t.Helper()
	literals = map[string]bool{}
	fset := token.NewFileSet()
	scanned := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case rel != "." && strings.HasPrefix(d.Name(), "."), d.Name() == "testdata", d.Name() == "node_modules",
				rel == "bin", rel == "tools",
				// Test harness parts (moto plug-ins) and the benchmark
				// commands are not the server.
				rel == "internal/testparts", rel == "internal/cmd":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		head, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if !importsAny(head, func(p string) bool { return drServices[p] != nil || p == stscredsPath }) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		scanned++
		c, tags := fileAWSCalls(t, fset, rel, f, literals)
		calls = append(calls, c...)
		copyTags = append(copyTags, tags...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned == 0 || len(calls) == 0 {
		t.Fatalf("no source file under %s calls EC2, EBS or STS: the scan is broken", root)
	}
	return calls, literals, copyTags
}

func importsAny(f *ast.File, match func(string) bool) bool {
	for _, im := range f.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); match(p) {
			return true
		}
	}
	return false
}

var (
	paginatorName = regexp.MustCompile(`^New(\w+)Paginator$`)
	waiterName    = regexp.MustCompile(`^New\w+Waiter$`)
)

// fileAWSCalls finds the AWS actions one file needs.
func fileAWSCalls(t *testing.T, fset *token.FileSet, rel string, f *ast.File, literals map[string]bool) (calls []awsCall, copyTags []string) {
	t.Helper()
	// The file's local names of the packages that matter.
	services := map[string]*awsService{} // local name -> service
	typesNames, stscredsName := map[string]bool{}, ""
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		switch {
		case drServices[p] != nil:
			services[name] = drServices[p]
		case slices.Contains(typesPackages, p):
			typesNames[name] = true
		case p == stscredsPath:
			stscredsName = name
		case strings.HasPrefix(p, awsSDKPrefix+"service/") && !strings.HasPrefix(p, awsSDKPrefix+"service/internal/"):
			t.Errorf("%s imports %s beside the DR services: add its IAM actions to the guide's policy and teach this test its operations", rel, p)
		}
	}
	at := func(n ast.Node) string { return fmt.Sprintf("%s:%d", rel, fset.Position(n.Pos()).Line) }
	add := func(action string, n ast.Node) { calls = append(calls, awsCall{action, at(n)}) }
	// byInput names the service of an *<pkg>.<Op>Input type expression.
	byInput := func(e ast.Expr, op string) *awsService {
		if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
			e = u.X
		}
		if c, ok := e.(*ast.CompositeLit); ok {
			e = c.Type
		}
		if s, ok := e.(*ast.StarExpr); ok {
			e = s.X
		}
		if sel, ok := e.(*ast.SelectorExpr); ok {
			if pkg, ok := sel.X.(*ast.Ident); ok && services[pkg.Name] != nil && sel.Sel.Name == op+"Input" {
				return services[pkg.Name]
			}
		}
		return nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, err := strconv.Unquote(n.Value); err == nil {
					literals[s] = true
				}
			}
		case *ast.InterfaceType:
			// An interface declaring a client operation is a call site:
			// whatever implements it, the code calls the operation.
			for _, m := range n.Methods.List {
				ft, ok := m.Type.(*ast.FuncType)
				if !ok || len(m.Names) == 0 || ft.Params == nil {
					continue
				}
				var params []ast.Expr
				for _, p := range ft.Params.List {
					for range max(1, len(p.Names)) {
						params = append(params, p.Type)
					}
				}
				if len(params) < 2 {
					continue
				}
				if svc := byInput(params[1], m.Names[0].Name); svc != nil && svc.ops[m.Names[0].Name] {
					add(svc.prefix+":"+m.Names[0].Name, m)
				}
			}
		case *ast.CompositeLit:
			// Building a Tag or TagSpecification (or a list of them) is
			// tagging a resource in the call that creates it.
			typ := n.Type
			if a, ok := typ.(*ast.ArrayType); ok {
				typ = a.Elt
			}
			if sel, ok := typ.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && typesNames[pkg.Name] && (sel.Sel.Name == "Tag" || sel.Sel.Name == "TagSpecification") {
					add("ec2:CreateTags", n)
				}
			}
			// The tags replication puts on its snapshots.
			if typeName(n.Type) != "ReplicateOptions" {
				return true
			}
			for _, e := range n.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if k, _ := kv.Key.(*ast.Ident); !ok || k == nil || k.Name != "Tags" {
					continue
				}
				m, ok := kv.Value.(*ast.CompositeLit)
				if !ok {
					t.Errorf("%s: the replication's Tags are not a map literal: teach this test to read them", at(kv))
					continue
				}
				for _, e := range m.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						if lit, ok := kv.Key.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							copyTags = append(copyTags, s)
							continue
						}
					}
					t.Errorf("%s: a tag key of the replication is not a string literal: teach this test to read it", at(e))
				}
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			name := sel.Sel.Name
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Obj == nil {
				switch {
				case services[pkg.Name] != nil:
					svc := services[pkg.Name]
					if m := paginatorName.FindStringSubmatch(name); m != nil && svc.ops[m[1]] {
						add(svc.prefix+":"+m[1], n)
					} else if waiterName.MatchString(name) {
						t.Errorf("%s: %s.%s waits through an operation this test cannot name: teach it which", at(n), pkg.Name, name)
					}
					return true
				case pkg.Name == stscredsName:
					switch name {
					case "NewAssumeRoleProvider":
						add("sts:AssumeRole", n)
					case "NewWebIdentityRoleProvider":
						add("sts:AssumeRoleWithWebIdentity", n)
					}
					return true
				}
			}
			if len(n.Args) < 2 {
				return true // an operation takes a context and its input
			}
			var found []*awsService
			for _, svc := range services {
				if svc.ops[name] {
					found = append(found, svc)
				}
			}
			if len(found) > 1 {
				if svc := byInput(n.Args[1], name); svc != nil {
					found = []*awsService{svc}
				}
			}
			switch len(found) {
			case 0:
			case 1:
				add(found[0].prefix+":"+name, n)
			default:
				t.Errorf("%s: %s is an operation of more than one AWS service this file imports: teach this test which", at(n), name)
			}
		}
		return true
	})
	return calls, copyTags
}

func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

// iamPolicy is an IAM policy document.
type iamPolicy struct {
	Version   string         `json:"Version"`
	Statement []iamStatement `json:"Statement"`
}

type iamStatement struct {
	Sid         string                                `json:"Sid"`
	Effect      string                                `json:"Effect"`
	Principal   json.RawMessage                       `json:"Principal"`
	Action      iamStrings                            `json:"Action"`
	NotAction   iamStrings                            `json:"NotAction"`
	Resource    iamStrings                            `json:"Resource"`
	NotResource iamStrings                            `json:"NotResource"`
	Condition   map[string]map[string]json.RawMessage `json:"Condition"`
}

// iamStrings is IAM's "a string or a list of strings".
type iamStrings []string

func (l *iamStrings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = iamStrings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("must be a string or a list of strings: %s", b)
	}
	if len(many) == 0 {
		return fmt.Errorf("must not be an empty list")
	}
	*l = many
	return nil
}

var (
	iamActionPattern   = regexp.MustCompile(`^([a-z0-9-]+):([A-Za-z0-9*?]+)$`)
	iamSidPattern      = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	iamCondKeyPattern  = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9/:._-]+$`)
	iamConditionOpBase = []string{"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
		"StringLike", "StringNotLike", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike", "Bool", "Null"}
)

// parsePolicy checks one policy document of the guide as IAM would take
// it, and returns it. trust says whether it is a role's trust policy (a
// resource policy: with principals, without resources).
func parsePolicy(t *testing.T, name string, doc []byte, trust bool) iamPolicy {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatalf("%s is not valid JSON: %v", name, err)
	}
	for k := range raw {
		if k != "Version" && k != "Id" && k != "Statement" {
			t.Errorf("%s: unknown top-level element %q", name, k)
		}
	}
	// A single statement object is valid IAM; the guide uses lists.
	var p iamPolicy
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s is not an IAM policy: %v", name, err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("%s: Version is %q, want 2012-10-17", name, p.Version)
	}
	if len(p.Statement) == 0 {
		t.Fatalf("%s has no statement", name)
	}
	sids := map[string]bool{}
	for i, s := range p.Statement {
		at := fmt.Sprintf("%s: statement %d (%s)", name, i, s.Sid)
		switch {
		case !iamSidPattern.MatchString(s.Sid):
			t.Errorf("%s: Sid must be letters and digits, got %q", at, s.Sid)
		case sids[s.Sid]:
			t.Errorf("%s: Sid %q is used twice", at, s.Sid)
		}
		sids[s.Sid] = true
		if s.Effect != "Allow" && s.Effect != "Deny" {
			t.Errorf("%s: Effect must be Allow or Deny, got %q", at, s.Effect)
		}
		if (len(s.Action) == 0) == (len(s.NotAction) == 0) {
			t.Errorf("%s: exactly one of Action and NotAction is required", at)
		}
		for _, a := range append(slices.Clone(s.Action), s.NotAction...) {
			m := iamActionPattern.FindStringSubmatch(a)
			if m == nil {
				t.Errorf("%s: %q is not an IAM action (service:Operation)", at, a)
				continue
			}
			svc := serviceByPrefix(m[1])
			if svc == nil {
				t.Errorf("%s: %q: the DR code calls no %s operation", at, a, m[1])
			} else if !strings.ContainsAny(m[2], "*?") && !svc.ops[m[2]] {
				t.Errorf("%s: %q is not an operation of %s", at, a, m[1])
			}
		}
		if trust {
			if len(s.Principal) == 0 {
				t.Errorf("%s: a trust policy statement names a Principal", at)
			}
			if len(s.Resource)+len(s.NotResource) > 0 {
				t.Errorf("%s: a trust policy statement has no Resource", at)
			}
		} else {
			if len(s.Principal) > 0 {
				t.Errorf("%s: an identity policy statement has no Principal", at)
			}
			if (len(s.Resource) == 0) == (len(s.NotResource) == 0) {
				t.Errorf("%s: exactly one of Resource and NotResource is required", at)
			}
		}
		for _, r := range append(slices.Clone(s.Resource), s.NotResource...) {
			if r != "*" && (!strings.HasPrefix(r, "arn:") || strings.Count(r, ":") < 5) {
				t.Errorf("%s: resource %q is neither * nor an ARN", at, r)
			}
		}
		for op, keys := range s.Condition {
			base := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(op, "ForAllValues:"), "ForAnyValue:"), "IfExists")
			if !slices.Contains(iamConditionOpBase, base) {
				t.Errorf("%s: unknown condition operator %q", at, op)
			}
			for k, v := range keys {
				if !iamCondKeyPattern.MatchString(k) {
					t.Errorf("%s: %q is not a condition key", at, k)
				}
				var values iamStrings
				if err := json.Unmarshal(v, &values); err != nil {
					t.Errorf("%s: condition %s %s: %v", at, op, k, err)
				}
				if base == "Null" || base == "Bool" {
					for _, b := range values {
						if b != "true" && b != "false" {
							t.Errorf("%s: %s %s takes \"true\" or \"false\", got %q", at, op, k, b)
						}
					}
				}
			}
		}
	}
	return p
}

func serviceByPrefix(prefix string) *awsService {
	for _, s := range drServices {
		if s.prefix == prefix {
			return s
		}
	}
	return nil
}

// iamMatch matches an action against a policy's pattern (* and ?, case
// insensitive, as IAM compares actions).
func iamMatch(pattern, action string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(strings.ToLower(pattern))) + "$"
	return regexp.MustCompile(re).MatchString(strings.ToLower(action))
}

func (s iamStatement) grants(action string) bool {
	if len(s.NotAction) > 0 {
		return !slices.ContainsFunc(s.NotAction, func(p string) bool { return iamMatch(p, action) })
	}
	return slices.ContainsFunc(s.Action, func(p string) bool { return iamMatch(p, action) })
}

// allows says whether some statement allows the action (under its
// conditions) and no unconditional Deny takes it away.
func (p iamPolicy) allows(action string) bool {
	allowed := false
	for _, s := range p.Statement {
		switch {
		case s.Effect == "Deny" && len(s.Condition) == 0 && s.grants(action):
			return false
		case s.Effect == "Allow" && s.grants(action):
			allowed = true
		}
	}
	return allowed
}

// guideIAMSection returns the JSON blocks under the guide's IAM heading,
// in order, and the section's text.
func guideIAMSection(t *testing.T) ([][]byte, string) {
	t.Helper()
	b, err := os.ReadFile(drGuide)
	if err != nil {
		t.Fatalf("%v (run `make generate`)", err)
	}
	text := string(b)
	start := strings.Index(text, "\n"+iamHeading+"\n")
	if start < 0 {
		t.Fatalf("%s has no %q heading", drGuide, iamHeading)
	}
	section := text[start+1:]
	if end := strings.Index(section[len(iamHeading):], "\n## "); end >= 0 {
		section = section[:len(iamHeading)+end]
	}
	var blocks [][]byte
	rest := section
	for {
		i := strings.Index(rest, "```json\n")
		if i < 0 {
			break
		}
		rest = rest[i+len("```json\n"):]
		j := strings.Index(rest, "\n```")
		if j < 0 {
			t.Fatalf("%s: a json block under %q is not closed", drGuide, iamHeading)
		}
		blocks = append(blocks, []byte(rest[:j+1]))
		rest = rest[j+4:]
	}
	if len(blocks) == 0 {
		t.Fatalf("%s: no ```json block under %q", drGuide, iamHeading)
	}
	return blocks, section
}

// destructiveActions must be limited to resources carrying Haven's tags.
var destructiveActions = []string{"ec2:TerminateInstances", "ec2:StopInstances", "ec2:DeleteVolume", "ec2:DeregisterImage", "ec2:DeleteSnapshot"}

var havenTagKey = regexp.MustCompile(`^(?:aws|ec2):(?:Resource|Request)Tag/(haven:[A-Za-z0-9._-]+)$`)

// TestDRGuideIAMPolicyAllowsWhatTheCodeCalls checks the IAM policy of the
// disaster recovery guide against the DR code: it is valid IAM policy
// JSON, it allows every EC2 and EBS operation the code calls (tagging on
// create included) and no other, it limits every destructive action to resources
// carrying Haven's tags, and those tags are ones the code sets. Of STS,
// GetCallerIdentity needs no permission (AWS allows it to every identity,
// and the guide says so), and AssumeRole is allowed by the policy of the
// identity that assumes the role, which the guide shows after the role's
// trust policy.
func TestDRGuideIAMPolicyAllowsWhatTheCodeCalls(t *testing.T) {
	blocks, section := guideIAMSection(t)
	policy := parsePolicy(t, "the guide's IAM policy", blocks[0], false)
	var trustPolicies, callerPolicies []iamPolicy
	for i, b := range blocks[1:] {
		name := fmt.Sprintf("JSON block %d under %q", i+2, iamHeading)
		if bytes.Contains(b, []byte(`"Principal"`)) {
			trustPolicies = append(trustPolicies, parsePolicy(t, name, b, true))
		} else {
			callerPolicies = append(callerPolicies, parsePolicy(t, name, b, false))
		}
	}

	calls, literals, copyTags := drAWSCalls(t, "..")
	need := map[string][]string{}
	for _, c := range calls {
		need[c.action] = append(need[c.action], c.at)
	}
	actions := make([]string, 0, len(need))
	for a := range need {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	t.Logf("the DR code needs %d actions: %s", len(actions), strings.Join(actions, ", "))
	for _, a := range actions {
		where := need[a][0]
		if len(need[a]) > 1 {
			where += fmt.Sprintf(" and %d more", len(need[a])-1)
		}
		switch a {
		case "sts:GetCallerIdentity":
			if !strings.Contains(section, "sts:GetCallerIdentity") {
				t.Errorf("%s (%s) needs no permission, and the guide's IAM section must say so", a, where)
			}
		case "sts:AssumeRole":
			if !slices.ContainsFunc(callerPolicies, func(p iamPolicy) bool { return p.allows(a) }) {
				t.Errorf("%s (%s): no policy under %q lets the server's own identity assume the role", a, where, iamHeading)
			}
			if !slices.ContainsFunc(trustPolicies, func(p iamPolicy) bool {
				return p.allows(a) && slices.ContainsFunc(p.Statement, func(s iamStatement) bool {
					return s.Condition["StringEquals"]["sts:ExternalId"] != nil
				})
			}) {
				t.Errorf("%s (%s): no trust policy under %q requires the external id", a, where, iamHeading)
			}
		default:
			if !policy.allows(a) {
				t.Errorf("the guide's IAM policy does not allow %s, which the DR code calls (%s)", a, where)
			}
		}
	}
	if !slices.Contains(actions, "ec2:RunInstances") || !slices.Contains(actions, "ebs:PutSnapshotBlock") {
		t.Fatalf("the scan missed ec2:RunInstances or ebs:PutSnapshotBlock, found %v: it is broken", actions)
	}

	// Destructive actions only on Haven's resources.
	for _, a := range destructiveActions {
		for _, s := range policy.Statement {
			if s.Effect != "Allow" || !s.grants(a) {
				continue
			}
			tagged := false
			for _, keys := range s.Condition {
				for k := range keys {
					tagged = tagged || havenTagKey.MatchString(k) && !strings.Contains(k, "RequestTag/")
				}
			}
			if len(s.NotResource) > 0 {
				tagged = false
			}
			if !tagged {
				t.Errorf("statement %s allows %s without a condition on a haven: resource tag", s.Sid, a)
			}
		}
	}
	// Tags in conditions are tags the code sets.
	for _, s := range policy.Statement {
		for _, keys := range s.Condition {
			for k, v := range keys {
				if m := havenTagKey.FindStringSubmatch(k); m != nil && !literals[m[1]] {
					t.Errorf("statement %s: condition on %s, a tag the DR code never sets", s.Sid, m[1])
				}
				if k != "aws:TagKeys" {
					continue
				}
				var allowed iamStrings
				_ = json.Unmarshal(v, &allowed)
				for _, tag := range allowed {
					if !literals[tag] {
						t.Errorf("statement %s: aws:TagKeys names %s, a tag the DR code never sets", s.Sid, tag)
					}
				}
				// Tagging restricted to keys must let replication put
				// all of its tags.
				if s.grants("ec2:CreateTags") {
					if len(copyTags) == 0 {
						t.Errorf("statement %s limits the tag keys, and this test found no tags replication puts (engdr.ReplicateOptions.Tags)", s.Sid)
					}
					for _, tag := range copyTags {
						if !slices.Contains(allowed, tag) {
							t.Errorf("statement %s: aws:TagKeys leaves out %s, which replication puts on its snapshots", s.Sid, tag)
						}
					}
				}
			}
		}
	}

	// Least privilege: nothing the code does not call.
	var granted []string
	for _, s := range policy.Statement {
		if s.Effect != "Allow" {
			continue
		}
		granted = append(granted, s.Action...)
		for _, a := range s.Action {
			if strings.ContainsAny(a, "*?") || len(s.NotAction) > 0 {
				t.Errorf("statement %s: %q allows operations by pattern; name each one the code calls", s.Sid, a)
			} else if need[a] == nil {
				t.Errorf("statement %s allows %s, which the DR code never calls", s.Sid, a)
			}
		}
	}
	slices.Sort(granted)
	t.Logf("the guide's policy allows: %s", strings.Join(slices.Compact(granted), ", "))
}
