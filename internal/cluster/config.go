package cluster

import (
	"fmt"
	"os"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"homelab/internal/stackconfig"
)

// loadConfig reads and validates the stack's homelab:* keys and the 1Password provider's settings
// before any resource is registered.
func loadConfig(ctx *pulumi.Context) (*stackconfig.Config, error) {
	cfg, warnings, err := stackconfig.Load(func(key string) (string, bool) {
		v, err := config.Try(ctx, stackconfig.Namespace+":"+key)
		return v, err == nil
	})
	if err != nil {
		return nil, err
	}
	if err := checkOnePasswordProvider(ctx, cfg.OnePassword.Vault); err != nil {
		return nil, err
	}
	for _, w := range warnings {
		if err := ctx.Log.Warn(w, nil); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// checkOnePasswordProvider checks that the 1Password provider can authenticate: a service-account
// token, or a Connect server URL and token, from the provider's own stack settings (tokens only
// as secrets) or its environment variables.
func checkOnePasswordProvider(ctx *pulumi.Context, vault string) error {
	setting := func(key, env string) (string, bool) {
		if v, err := config.Try(ctx, "onepassword:"+key); err == nil && v != "" {
			return v, true
		}
		return os.Getenv(env), false
	}
	sa, saInConfig := setting("serviceAccountToken", "OP_SERVICE_ACCOUNT_TOKEN")
	url, _ := setting("url", "OP_CONNECT_HOST")
	token, tokenInConfig := setting("token", "OP_CONNECT_TOKEN")
	var problems []string
	for key, inConfig := range map[string]bool{"serviceAccountToken": saInConfig && sa != "", "token": tokenInConfig && token != ""} {
		if inConfig && !ctx.IsConfigSecret("onepassword:"+key) {
			problems = append(problems, fmt.Sprintf("onepassword:%s is stored in plain text; store it encrypted: pulumi config set --secret onepassword:%s <token>", key, key))
		}
	}
	if sa == "" && (url == "" || token == "") {
		problems = append(problems, fmt.Sprintf("the 1Password provider has no credentials; set either "+
			"onepassword:serviceAccountToken (pulumi config set --secret onepassword:serviceAccountToken <token> for a "+
			"service account that can read and write vault %q; needs the op CLI) or onepassword:url and onepassword:token "+
			"(pulumi config set onepassword:url <Connect server URL>; pulumi config set --secret onepassword:token <token>)", vault))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid stack configuration:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}
