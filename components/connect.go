package components

import (
	"encoding/base64"
	"strings"

	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
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
	// Cilium is the CNI install; Connect's pods need it. Required.
	Cilium *Cilium
}

// OnePasswordConnect runs the 1Password Connect server and operator in namespace onepassword, so
// OnePasswordItem objects become Kubernetes Secrets. Pass the Kubernetes provider with
// pulumi.Provider. Its two credentials reach the cluster only as secret chart values.
type OnePasswordConnect struct {
	pulumi.ResourceState

	// Chart is the installed chart; it completes once the server and the operator are ready.
	Chart *helmv4.Chart
}

// NewOnePasswordConnect registers the namespace and the chart.
func NewOnePasswordConnect(ctx *pulumi.Context, name string, args *OnePasswordConnectArgs, opts ...pulumi.ResourceOption) (*OnePasswordConnect, error) {
	c := &OnePasswordConnect{}
	if err := ctx.RegisterComponentResource(connectType, name, c, opts...); err != nil {
		return nil, err
	}
	ns, err := newObject(ctx, name+"-namespace", args.Data.Namespace, pulumi.Parent(c))
	if err != nil {
		return nil, err
	}
	credentials := args.Credentials.ToStringOutput().ApplyT(credentialsBase64).(pulumi.StringOutput)
	chart, err := newChart(ctx, name, chartSpec{
		repo: ConnectRepository, chart: "connect", version: args.Version,
		release: "connect", namespace: args.Data.Namespace.Name, values: args.Data.Values,
		computed: pulumi.Map{
			"connect":  pulumi.Map{"credentials_base64": pulumi.ToSecret(credentials)},
			"operator": pulumi.Map{"token": pulumi.Map{"value": pulumi.ToSecret(args.Token)}},
		},
	},
		pulumi.Parent(c),
		// The chart installs into the namespace, and its pods need the CNI.
		pulumi.DependsOn([]pulumi.Resource{ns, args.Cilium.Chart}),
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
// returns it base64-encoded for the chart's connect.credentials_base64.
func credentialsBase64(v string) string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") {
		return base64.StdEncoding.EncodeToString([]byte(v))
	}
	return v
}
