package components

import (
	"fmt"

	helmv4 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/helm/v4"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// chartSpec is one pinned Helm chart install: where it comes from, where it goes, its values file
// from src/ and the values computed by the program.
type chartSpec struct {
	repo, chart, version string
	release, namespace   string
	values               string
	computed             pulumi.Map
}

// newChart installs a chart with helm/v4 (each object the chart renders becomes a resource, and the
// chart completes once its workloads are ready). It is protected: deleting a platform chart takes
// down what runs on it, so destroy stops there; the chart's objects inherit the protection.
func newChart(ctx *pulumi.Context, name string, c chartSpec, opts ...pulumi.ResourceOption) (*helmv4.Chart, error) {
	res, err := helmv4.NewChart(ctx, name, &helmv4.ChartArgs{
		Chart:          pulumi.String(c.chart),
		Version:        pulumi.String(c.version),
		RepositoryOpts: &helmv4.RepositoryOptsArgs{Repo: pulumi.String(c.repo)},
		Name:           pulumi.String(c.release),
		Namespace:      pulumi.String(c.namespace),
		ValueYamlFiles: pulumi.AssetOrArchiveArray{pulumi.NewStringAsset(c.values)},
		Values:         c.computed,
	}, append(opts, pulumi.Protect(true))...)
	if err != nil {
		return nil, fmt.Errorf("registering the %s chart %s: %w", c.chart, c.version, err)
	}
	return res, nil
}
