package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"homelab/internal/stackconfig"
)

// loadConfig reads and validates the stack's homelab:* keys before any resource is registered.
func loadConfig(ctx *pulumi.Context) (*stackconfig.Config, error) {
	cfg, warnings, err := stackconfig.Load(func(key string) (string, bool) {
		v, err := config.Try(ctx, stackconfig.Namespace+":"+key)
		return v, err == nil
	})
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		if err := ctx.Log.Warn(w, nil); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}
