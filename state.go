package main

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/stackconfig"
)

// deployedOutput is the stack output that records what the stack deployed.
const deployedOutput = "deployed"

// deployed is the stack's record of what it deployed: exported by every run and read back by the
// next through a reference to the stack itself. It tells a stack that has deployed from one that
// never has (a new cluster, or a lost state being restored), and lets a change be compared with
// what runs (the Talos and Kubernetes versions, the nodes) before anything is registered. The
// record is only as new as the last run that finished; every step it informs is also guarded by
// the resources' own state, so a stale record repeats a check, never an action.
type deployed struct {
	Cluster           string         `json:"cluster"`
	TalosVersion      string         `json:"talosVersion"`
	KubernetesVersion string         `json:"kubernetesVersion"`
	Nodes             []deployedNode `json:"nodes"`
}

type deployedNode struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Role    string `json:"role"`
}

// readDeployed reads the record of the stack's last run; nil when the stack never deployed.
func readDeployed(ctx *pulumi.Context) (*deployed, error) {
	self := fmt.Sprintf("%s/%s/%s", ctx.Organization(), ctx.Project(), ctx.Stack())
	ref, err := pulumi.NewStackReference(ctx, "previous-deployment", &pulumi.StackReferenceArgs{Name: pulumi.String(self)})
	if err != nil {
		return nil, fmt.Errorf("reading this stack's last deployment: %w", err)
	}
	out, err := ref.GetOutputDetails(deployedOutput)
	if err != nil {
		return nil, fmt.Errorf("reading this stack's last deployment: %w", err)
	}
	if out.Value == nil {
		return nil, nil
	}
	b, err := json.Marshal(out.Value)
	if err != nil {
		return nil, err
	}
	var d deployed
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("this stack's output %q is not what the program exports: %w", deployedOutput, err)
	}
	return &d, nil
}

// record is what this run deploys, as the next run will read it.
func record(c stackconfig.Cluster) pulumi.Map {
	nodes := pulumi.Array{}
	for _, n := range c.Nodes {
		nodes = append(nodes, pulumi.Map{"name": pulumi.String(n.Name), "address": pulumi.String(n.Address), "role": pulumi.String(n.Role)})
	}
	return pulumi.Map{
		"cluster": pulumi.String(c.Name), "talosVersion": pulumi.String(c.TalosVersion),
		"kubernetesVersion": pulumi.String(c.KubernetesVersion), "nodes": nodes,
	}
}
