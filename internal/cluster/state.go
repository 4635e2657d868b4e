package cluster

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

// record is what this run deploys, as the next run will read it: lifecycle.Record in its own
// JSON form, so the export holds every field readDeployed decodes.
func record(cfg *stackconfig.Config, plan lifecycle.Plan, backupVaultUUID string) pulumi.Input {
	plan.Backup.VaultUUID = backupVaultUUID
	b, err := json.Marshal(lifecycle.Record(cfg, plan))
	if err != nil {
		panic(err) // a struct of strings, bools and lists always marshals
	}
	var plain any
	if err := json.Unmarshal(b, &plain); err != nil {
		panic(err)
	}
	return input(plain)
}

// input turns a decoded JSON value into the Pulumi input of the same shape.
func input(v any) pulumi.Input {
	switch v := v.(type) {
	case map[string]any:
		m := pulumi.Map{}
		for k, x := range v {
			m[k] = input(x)
		}
		return m
	case []any:
		a := pulumi.Array{}
		for _, x := range v {
			a = append(a, input(x))
		}
		return a
	case bool:
		return pulumi.Bool(v)
	case float64:
		return pulumi.Float64(v)
	case string:
		return pulumi.String(v)
	}
	return nil
}
