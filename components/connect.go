package components

import (
	"encoding/base64"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/manifests"
)

// ConnectRepository is the Helm repository of the 1Password connect chart.
const ConnectRepository = "https://1password.github.io/connect-helm-charts"

// OnePasswordConnectArgs configures the 1Password Connect server and operator.
type OnePasswordConnectArgs struct {
	// Version is the connect chart version. Required.
	Version string
	// Data is the namespace and values from src/bootstrap/onepassword/. Required.
	Data *manifests.Connect
	// Credentials is the content of the Connect server's 1password-credentials.json, as JSON or
	// base64 (secret). Required.
	Credentials pulumi.StringInput
	// Token is the Connect token the operator uses (secret). Required.
	Token pulumi.StringInput
	// WatchNamespaces are the namespaces whose OnePasswordItems the operator syncs; it watches no
	// other. Optional: none listed, it watches only its own namespace (never the chart's default,
	// every namespace).
	WatchNamespaces []string
	// Cilium is the CNI install; Connect's pods need it. Required.
	Cilium *Cilium
	// Rendering renders the chart. Required.
	Rendering ChartRendering
	// After is what must finish first: the rollout of the nodes (NewCNICleanup's command, which
	// waits for every node's gate). Nodes reboot during a rollout, the cluster endpoint's node
	// among them, and the Kubernetes API does not answer while it is down. Required.
	After []pulumi.Resource
}

// The Secrets the Connect server and the operator read (values connect.credentialsName and
// credentialsKey, operator.token.name and key of the connect chart).
const (
	connectCredentialsSecret = "op-credentials"
	connectCredentialsKey    = "1password-credentials.json"
	connectTokenSecret       = "onepassword-token"
	connectTokenKey          = "token"
)

// OnePasswordConnect runs the 1Password Connect server and operator in namespace onepassword, so
// OnePasswordItem objects become Kubernetes Secrets. Pass the Kubernetes provider with
// pulumi.Provider. Its two credentials reach the cluster only as Secrets whose data is secret in
// the state and in every preview.
type OnePasswordConnect struct {
	pulumi.ResourceState

	// Chart is the installed chart; it completes once the server and the operator are ready.
	Chart *Chart
}

func watchNamespaces(ns []string) []any {
	out := make([]any, len(ns))
	for i, n := range ns {
		out[i] = n
	}
	return out
}

// NewOnePasswordConnect registers the namespace and the chart.
func NewOnePasswordConnect(ctx *pulumi.Context, name string, args *OnePasswordConnectArgs, opts ...pulumi.ResourceOption) (*OnePasswordConnect, error) {
	c := &OnePasswordConnect{}
	if err := ctx.RegisterComponentResource(connectType, name, c, opts...); err != nil {
		return nil, err
	}
	watch := args.WatchNamespaces
	if len(watch) == 0 {
		// Listing none would let the operator watch every namespace (the chart's default): it
		// watches its own, where nobody creates items.
		watch = []string{args.Data.Namespace.Name}
	}
	ns, err := newObject(ctx, name+"-namespace", args.Data.Namespace, pulumi.Parent(c),
		// No data edge to the rollout: the platform waits until the nodes have settled.
		pulumi.DependsOn(args.After))
	if err != nil {
		return nil, err
	}
	// The two credentials never pass through the chart: the program writes them into Secrets of
	// its own, which the chart's workloads read by name (the chart creates these Secrets only when
	// given the values, which it is not).
	credentials := args.Credentials.ToStringOutput().ApplyT(credentialsBase64).(pulumi.StringOutput)
	var secrets []pulumi.Resource
	for _, s := range []struct {
		name, key string
		value     pulumi.StringOutput
	}{
		{connectCredentialsSecret, connectCredentialsKey, credentials},
		{connectTokenSecret, connectTokenKey, args.Token.ToStringOutput()},
	} {
		res, err := newObject(ctx, name+"-"+s.name, manifests.Object{
			Source: "the 1Password item homelab:onepassword.connectItem", APIVersion: "v1", Kind: "Secret",
			Name: s.name, Namespace: args.Data.Namespace.Name,
			Fields: map[string]any{"type": "Opaque",
				"stringData": pulumi.ToSecret(pulumi.StringMap{s.key: s.value})},
		}, pulumi.Parent(c),
			// The Secret lives in the namespace, which it names as plain text: no data edge.
			pulumi.DependsOn([]pulumi.Resource{ns}))
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, res)
	}
	chart, err := newChart(ctx, name, chartSpec{
		repo: ConnectRepository, chart: "connect", version: args.Version,
		release: "connect", namespace: args.Data.Namespace.Name, values: args.Data.Values,
		computed: map[string]any{
			"connect": map[string]any{"credentialsName": connectCredentialsSecret, "credentialsKey": connectCredentialsKey},
			"operator": map[string]any{"token": map[string]any{"name": connectTokenSecret, "key": connectTokenKey},
				"watchNamespace": watchNamespaces(watch)},
		},
		rendering: args.Rendering,
	},
		// The chart installs into the namespace, its pods read the Secrets and need the CNI.
		append([]pulumi.Resource{ns, args.Cilium.Chart}, secrets...),
		pulumi.Parent(c),
	)
	if err != nil {
		return nil, err
	}
	c.Chart = chart
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{}); err != nil {
		return nil, err
	}
	return c, nil
}

// credentialsBase64 accepts the credentials file as stored in 1Password, raw JSON or base64, and
// returns it base64-encoded, the form the Connect server reads from its credentials file.
func credentialsBase64(v string) string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") {
		return base64.StdEncoding.EncodeToString([]byte(v))
	}
	return v
}
