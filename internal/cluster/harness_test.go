package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"homelab/internal/fixture"
	_ "homelab/internal/golden" // registers -update for go test ./...
	"homelab/internal/talosplan"
	"homelab/src"
)

// Tokens the tests look for.
const (
	secretsToken   = "talos:machine/secrets:Secrets"
	applyToken     = "talos:machine/configurationApply:ConfigurationApply"
	bootstrapToken = "talos:machine/bootstrap:Bootstrap"
	kubeconfigTok  = "talos:cluster/kubeconfig:Kubeconfig"
	schematicToken = "talos:imageFactory/schematic:Schematic"
	commandToken   = "command:local:Command"
	healthInvoke   = "talos:cluster/getHealth:getHealth"
	vaultInvoke    = "onepassword:index/getVault:getVault"
	itemInvoke     = "onepassword:index/getItem:getItem"
	itemToken      = "onepassword:index/item:Item"
	disksInvoke    = "talos:machine/getDisks:getDisks"
	templateInvoke = "kubernetes:helm:template"
	chartToken     = "homelab:k8s:Chart"
)

// registration is one resource the program registered, with its full request.
type registration struct {
	Type, Name string
	Inputs     resource.PropertyMap
	Req        *pulumirpc.RegisterResourceRequest
}

// recorder is a recording mock of the Pulumi engine: it keeps every registration and invoke and
// answers with plausible outputs.
type recorder struct {
	schematicID string
	// storedContract, when set, is the talosVersion the secrets bundle reports from state.
	storedContract string
	// vault maps item titles to their fields; an absent title is a missing item.
	vault map[string]map[string]string
	// previous is the stack's "deployed" output of its last run; nil: the stack never deployed.
	previous  map[string]any
	mu        sync.Mutex
	resources []registration
	// reads are the resources the program read (its own last deployment): they register nothing.
	reads   []string
	invokes []string
	// items are the titles of the vault items the program read, in order.
	items []string
	// templates holds the options of each chart the program rendered, by chart name.
	templates map[string]map[string]any
	// templateProviders holds the provider each chart was rendered with.
	templateProviders map[string]string
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if args.RegisterRPC == nil && args.TypeToken == "pulumi:pulumi:StackReference" {
		r.mu.Lock()
		r.reads = append(r.reads, args.Name)
		r.mu.Unlock()
		outputs := map[string]any{}
		if r.previous != nil {
			outputs[deployedOutput] = r.previous
		}
		return args.ID, resource.NewPropertyMapFromMap(map[string]any{"name": args.Inputs["name"].V, "outputs": outputs}), nil
	}
	r.mu.Lock()
	r.resources = append(r.resources, registration{Type: args.TypeToken, Name: args.Name, Inputs: args.Inputs, Req: args.RegisterRPC})
	r.mu.Unlock()
	out := args.Inputs.Copy()
	id := args.Name + "-id"
	// Outputs the provider's schema marks secret come back secret, as the bridge returns them.
	var secret []string
	switch args.TypeToken {
	case secretsToken:
		out["machineSecrets"] = resource.NewPropertyValue(map[string]any{
			"cluster": map[string]any{"id": "cluster-id", "secret": mockSecrets.clusterSecret},
			"certs":   map[string]any{"os": map[string]any{"cert": "os-crt", "key": mockSecrets.caKey}},
		})
		out["clientConfiguration"] = resource.NewPropertyValue(map[string]any{
			"caCertificate": "ca", "clientCertificate": "crt", "clientKey": mockSecrets.clientKey,
		})
		secret = []string{"machineSecrets", "clientConfiguration"}
		if r.storedContract != "" {
			out["talosVersion"] = resource.NewStringProperty(r.storedContract)
		}
	case schematicToken:
		id = r.schematicID
	case kubeconfigTok:
		out["kubeconfigRaw"] = resource.NewStringProperty(mockSecrets.kubeconfig)
		out["kubernetesClientConfiguration"] = resource.NewPropertyValue(map[string]any{"clientKey": mockSecrets.kubeconfigKey})
		secret = []string{"kubeconfigRaw"}
	}
	// The engine makes the outputs a registration lists as additional secret outputs secret.
	if args.RegisterRPC != nil {
		secret = append(secret, args.RegisterRPC.GetAdditionalSecretOutputs()...)
	}
	for _, k := range secret {
		if v, ok := out[resource.PropertyKey(k)]; ok && !v.IsSecret() {
			out[resource.PropertyKey(k)] = resource.MakeSecret(v)
		}
	}
	return id, out, nil
}

// mockSecrets are the key material the mocked providers return: each distinctive, so a test
// finds it wherever the program puts it.
var mockSecrets = struct {
	clusterSecret, caKey, clientKey, kubeconfigKey, kubeconfig, talosconfigKey, talosconfig string
}{
	clusterSecret: "mock-cluster-secret-Kx3", caKey: "mock-os-ca-key-Kx3", clientKey: "mock-admin-client-key-Kx3",
	kubeconfigKey:  "mock-kubeconfig-client-key-Kx3",
	kubeconfig:     "apiVersion: v1\nkind: Config\nclusters:\n- name: norns\n  cluster:\n    server: https://192.168.0.120:6443\nusers:\n- name: admin\n  user:\n    client-key-data: bW9jay1rdWJlY29uZmlnLWNsaWVudC1rZXktS3gz\n",
	talosconfigKey: "mock-talosconfig-key-Kx3",
	talosconfig:    "context: lab\ncontexts:\n  lab:\n    key: bW9jay10YWxvc2NvbmZpZy1rZXktS3gz\n",
}

// secretForms are every fixture and mock secret value, in clear and base64-encoded (as a
// kubeconfig, a talosconfig or a Secret's data carries it).
func secretForms() []string {
	values := []string{fixture.ConnectToken, fixture.ConnectCredentials, fixture.ServiceAccount, "fixture-server-key", "$2a$10$fixturehash",
		mockSecrets.clusterSecret, mockSecrets.caKey, mockSecrets.clientKey, mockSecrets.kubeconfigKey, mockSecrets.talosconfigKey}
	var out []string
	for _, v := range values {
		out = append(out, v, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return out
}

func (r *recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	r.mu.Lock()
	r.invokes = append(r.invokes, args.Token)
	r.mu.Unlock()
	switch args.Token {
	case "talos:machine/getConfiguration:getConfiguration":
		return resource.NewPropertyMapFromMap(map[string]any{
			"machineConfiguration": "version: v1alpha1 # " + args.Args["machineType"].StringValue(),
		}), nil
	case "talos:client/getConfiguration:getConfiguration":
		return resource.NewPropertyMapFromMap(map[string]any{"talosConfig": mockSecrets.talosconfig}), nil
	case healthInvoke:
		return resource.NewPropertyMapFromMap(map[string]any{"id": "cluster_health"}), nil
	case vaultInvoke:
		name := args.Args["name"].StringValue()
		for uuid, n := range vaultNames {
			if n == name {
				return resource.NewPropertyMapFromMap(map[string]any{"uuid": uuid, "name": name}), nil
			}
		}
		return nil, fmt.Errorf("no vault named %s", name)
	case itemInvoke:
		title := args.Args["title"].StringValue()
		key := title
		if v := vaultNames[args.Args["vault"].StringValue()]; v != "kubernetes" {
			key = v + "/" + title
		}
		r.mu.Lock()
		r.items = append(r.items, key)
		r.mu.Unlock()
		fields, ok := r.vault[key]
		if !ok { // the op CLI's wording, which the program tells from other errors
			return nil, fmt.Errorf("%q isn't an item in the %q vault. Specify the item with its UUID, name, or domain", title, args.Args["vault"].StringValue())
		}
		var fs, tags []any
		for label, value := range fields {
			if label == tagsField {
				for _, tag := range strings.Split(value, ",") {
					tags = append(tags, tag)
				}
				continue
			}
			fs = append(fs, map[string]any{"label": label, "value": value, "type": "CONCEALED"})
		}
		return resource.NewPropertyMapFromMap(map[string]any{
			"title": title, "uuid": "uuid-" + title, "tags": tags, "sections": []any{map[string]any{"label": "", "fields": fs}},
		}), nil
	case templateInvoke:
		var opts map[string]any
		if err := json.Unmarshal([]byte(args.Args["jsonOpts"].StringValue()), &opts); err != nil {
			return nil, err
		}
		name, _ := opts["chart"].(string)
		r.mu.Lock()
		if r.templates == nil {
			r.templates, r.templateProviders = map[string]map[string]any{}, map[string]string{}
		}
		r.templates[name], r.templateProviders[name] = opts, args.Provider
		r.mu.Unlock()
		return resource.NewPropertyMapFromMap(map[string]any{"result": renderStandIn(name, opts)}), nil
	}
	return resource.PropertyMap{}, nil
}

// renderStandIn stands in for `helm template` in mock runs: a few objects of the chart's kinds, the
// values visible in a ConfigMap, a CRD where the real chart has CRDs, and a Secret the chart
// generates (so the tests see how rendered objects are registered, not what the charts hold; the
// lab and a real preview render the real charts).
func renderStandIn(chart string, opts map[string]any) []any {
	values, _ := json.Marshal(opts["values"])
	objects := []any{
		map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": chart + "-values"},
			"data": map[string]any{"values.json": string(values)}},
		map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": chart + "-server"},
			"spec": map[string]any{"replicas": 1}},
		map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": chart + "-generated"},
			"data": map[string]any{"key": "Z2VuZXJhdGVk"}},
	}
	if chart != "cilium" {
		objects = append(objects, map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": "things." + chart + ".example"}, "spec": map[string]any{"group": chart + ".example"}})
	}
	return objects
}

// result is one mocked run of the program.
type result struct {
	*recorder
	outputs pulumi.Map
	err     error
}

type runOpts struct {
	preview        bool
	data           fs.FS
	storedContract string
	// vault replaces the fixture vault when set.
	vault map[string]map[string]string
	// previous is the stack's last deployment record. Default: none for a new cluster, and for an
	// adopted one the record of the same cluster (a stack already in use), unless restore is set.
	previous map[string]any
	// restore runs an adopted cluster's stack with no state.
	restore bool
	// root is the project directory the program sees; default the working directory.
	root string
	// unreachable are node addresses whose Talos API does not answer.
	unreachable []string
	// config adds or replaces stack settings.
	config map[string]string
	// talosctl and kubectl are the versions of the tools on PATH; default: those of the stack's
	// Talos and Kubernetes versions.
	talosctl, kubectl string
}

// tagsField, in a fixture vault item, holds the item's tags (comma-separated), not a field.
const tagsField = "(tags)"

// The mock's vaults, by UUID: the main vault, and the vault of the identity backup (the default
// homelab:onepassword.backupVault). A fixture vault's titles are the main vault's items;
// "kubernetes-identity/<title>" is an item of the identity vault.
const identityVault = "kubernetes-identity"

var vaultNames = map[string]string{"vault-uuid": "kubernetes", "identity-uuid": identityVault}

// runProgram runs the program under the recording mock with the given cluster config and the
// networking config of the norns stack.
func runProgram(t *testing.T, cluster map[string]any, opts runOpts) *result {
	t.Helper()
	return runProgramWith(t, cluster, fixture.StackKey(t, "norns", "networking"), opts)
}

// runProgramWith runs the program with the given cluster and networking config.
func runProgramWith(t *testing.T, cluster, networking map[string]any, opts runOpts) *result {
	t.Helper()
	if opts.data == nil {
		opts.data = src.FS
	}
	talos, err := talosplan.Load(opts.data)
	if err != nil {
		// The program reports bad data itself; the factory's ID then comes from the real src/.
		if talos, err = talosplan.Load(src.FS); err != nil {
			t.Fatal(err)
		}
	}
	text, err := json.Marshal(cluster)
	if err != nil {
		t.Fatal(err)
	}
	netText, err := json.Marshal(networking)
	if err != nil {
		t.Fatal(err)
	}
	if opts.vault == nil {
		opts.vault = fixture.Vault()
	}
	if adopt, _ := cluster["adopt"].(bool); opts.previous == nil && adopt && !opts.restore {
		opts.previous = deployedRecord(cluster)
	}
	res := &result{recorder: &recorder{schematicID: talos.SchematicID, storedContract: opts.storedContract, vault: opts.vault, previous: opts.previous}}
	config := map[string]string{
		"homelab:cluster":                 string(text),
		"homelab:networking":              string(netText),
		"homelab:argocd":                  `{"repoURL": "https://github.com/norns-homelab/homelab.git"}`,
		"onepassword:serviceAccountToken": fixture.ServiceAccount,
	}
	for k, v := range opts.config {
		config[k] = v
	}
	talosctl, kubectl := opts.talosctl, opts.kubectl
	if talosctl == "" {
		talosctl, _ = cluster["talosVersion"].(string) // the talosctl of the stack's release
	}
	if kubectl == "" {
		kubectl, _ = cluster["kubernetesVersion"].(string)
	}
	defer mockNodes(opts.unreachable, talosctl, kubectl)()
	res.err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		var err error
		res.outputs, err = Run(ctx, opts.data)
		return err
	}, pulumi.WithMocks("homelab", "norns", res.recorder), func(info *pulumi.RunInfo) {
		info.Config = config
		info.ConfigSecretKeys = []string{"onepassword:serviceAccountToken", "onepassword:token"}
		info.DryRun = opts.preview
		info.RootDirectory = opts.root
	})
	return res
}

// runProgramPlain runs the program with exactly the given provider settings, none of them secret.
func runProgramPlain(t *testing.T, cluster map[string]any, provider map[string]string) *result {
	t.Helper()
	text, err := json.Marshal(cluster)
	if err != nil {
		t.Fatal(err)
	}
	res := &result{recorder: &recorder{vault: fixture.Vault()}}
	config := map[string]string{"homelab:cluster": string(text), "homelab:argocd": `{"enabled": false}`}
	for k, v := range provider {
		config[k] = v
	}
	t.Setenv("OP_SERVICE_ACCOUNT_TOKEN", "")
	t.Setenv("OP_CONNECT_HOST", "")
	t.Setenv("OP_CONNECT_TOKEN", "")
	defer mockNodes(nil, fmt.Sprint(cluster["talosVersion"]), fmt.Sprint(cluster["kubernetesVersion"]))()
	res.err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := Run(ctx, src.FS)
		return err
	}, pulumi.WithMocks("homelab", "norns", res.recorder), func(info *pulumi.RunInfo) { info.Config = config })
	return res
}

// mustRun is runProgram for runs that must succeed.
func mustRun(t *testing.T, cluster map[string]any, opts runOpts) *result {
	t.Helper()
	r := runProgram(t, cluster, opts)
	if r.err != nil {
		t.Fatalf("program failed: %v", r.err)
	}
	return r
}

func urnName(urn string) string {
	return urn[strings.LastIndex(urn, "::")+2:]
}

func urnType(urn string) string {
	parts := strings.Split(urn, "::")
	types := strings.Split(parts[len(parts)-2], "$")
	return types[len(types)-1]
}

// get returns the one registration of a type and name.
func (r *result) get(t *testing.T, typ, name string) registration {
	t.Helper()
	for _, res := range r.resources {
		if res.Type == typ && res.Name == name {
			return res
		}
	}
	t.Fatalf("no %s named %s registered; registered: %s", typ, name, r.names(""))
	return registration{}
}

// ofType returns the registrations of a type, sorted by name.
func (r *result) ofType(typ string) []registration {
	var out []registration
	for _, res := range r.resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *result) names(typ string) string {
	var out []string
	for _, res := range r.resources {
		if typ == "" || res.Type == typ {
			out = append(out, res.Name)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// deps returns the names of a registration's explicit and input dependencies.
func (reg registration) deps() map[string]bool {
	out := map[string]bool{}
	for _, d := range reg.Req.GetDependencies() {
		out[urnName(d)] = true
	}
	for _, pd := range reg.Req.GetPropertyDependencies() {
		for _, d := range pd.GetUrns() {
			out[urnName(d)] = true
		}
	}
	return out
}

// chartObjects returns the objects a chart registered (named "<chart>:<kind>:...").
func (r *result) chartObjects(chart string) []registration {
	var out []registration
	for _, res := range r.resources {
		if strings.HasPrefix(res.Name, chart+":") && strings.HasPrefix(res.Type, "kubernetes:") {
			out = append(out, res)
		}
	}
	return out
}

// waitsForChart reports whether reg depends, directly or not, on every object of a chart (a
// chart is ready once all its objects are).
func (r *result) waitsForChart(t *testing.T, reg registration, chart string) bool {
	t.Helper()
	objects := r.chartObjects(chart)
	if len(objects) == 0 {
		t.Fatalf("the %s chart registered no objects", chart)
	}
	for _, o := range objects {
		if !r.dependsOn(reg, o.Name) {
			return false
		}
	}
	return true
}

// dependsOn reports whether reg depends, directly or through other resources, on the resource named name.
func (r *result) dependsOn(reg registration, name string) bool {
	byName := map[string]registration{}
	for _, res := range r.resources {
		byName[res.Name] = res
	}
	seen := map[string]bool{}
	var walk func(registration) bool
	walk = func(x registration) bool {
		for d := range x.deps() {
			if d == name {
				return true
			}
			if !seen[d] {
				seen[d] = true
				if next, ok := byName[d]; ok && walk(next) {
					return true
				}
			}
		}
		return false
	}
	return walk(reg)
}

// await resolves an output of a finished run.
func await(t *testing.T, o pulumi.Output) internals.UnsafeAwaitOutputResult {
	t.Helper()
	res, err := internals.UnsafeAwaitOutput(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func str(v resource.PropertyValue) string {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		return v.StringValue()
	}
	return fmt.Sprint(v.V)
}

// deployedRecord is the stack output a run with this cluster config exports.
func deployedRecord(cluster map[string]any) map[string]any {
	var nodes []any
	for _, n := range cluster["nodes"].([]any) {
		m := n.(map[string]any)
		nodes = append(nodes, map[string]any{"name": m["name"], "address": m["address"], "role": m["role"]})
	}
	return map[string]any{"cluster": cluster["name"], "talosVersion": cluster["talosVersion"],
		"kubernetesVersion": cluster["kubernetesVersion"], "nodes": nodes, "backupVault": identityVault}
}

// mockNodes makes the nodes answer (under the mock engine none exists), but for unreachable ones,
// until the returned func restores the real probe.
func mockNodes(unreachable []string, talosctl, kubectl string) func() {
	real, realTools := probe, clientVersions
	probe = func(addr string) error {
		if slices.Contains(unreachable, addr) {
			return fmt.Errorf("dial tcp %s:50000: connect: no route to host", addr)
		}
		return nil
	}
	clientVersions = func() (string, string) { return talosctl, kubectl }
	return func() { probe, clientVersions = real, realTools }
}
