package main

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/lifecycle"
	"homelab/internal/stackconfig"
)

// deployedOutput is the stack output that records what the stack deployed (lifecycle.Deployed).
const deployedOutput = "deployed"

// readDeployed reads the record of the stack's last run through a reference to the stack itself;
// nil when the stack never deployed. The record is only as new as the last run that finished;
// every step it informs is also guarded by its resources' own state, so a stale record repeats a
// check, never an action.
func readDeployed(ctx *pulumi.Context) (*lifecycle.Deployed, error) {
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
	var d lifecycle.Deployed
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("this stack's output %q is not what the program exports: %w", deployedOutput, err)
	}
	return &d, nil
}

// record is what this run deploys, as the next run will read it.
func record(c stackconfig.Cluster) pulumi.Map {
	d := lifecycle.Record(c)
	nodes := pulumi.Array{}
	for _, n := range d.Nodes {
		nodes = append(nodes, pulumi.Map{"name": pulumi.String(n.Name), "address": pulumi.String(n.Address), "role": pulumi.String(n.Role)})
	}
	return pulumi.Map{
		"cluster": pulumi.String(d.Cluster), "talosVersion": pulumi.String(d.TalosVersion),
		"kubernetesVersion": pulumi.String(d.KubernetesVersion), "secureBoot": pulumi.Bool(*d.SecureBoot), "nodes": nodes,
	}
}
