// Command pulumi-resource-talos simulates the Talos provider plugin (pulumiverse/pulumi-talos
// 0.7.1, which bridges siderolabs/terraform-provider-talos v0.10.1) for the lab: the same tokens
// and property names, and the same behaviour, read from the provider's source at v0.10.1
// (pkg/talos/*.go, cited per function as TFT:<file>:<line>). It talks to the lab's simulated nodes
// over the real Talos machine API with Talos's own client, generates real secrets bundles and
// machine configs with Talos machinery, and runs Talos's own health checks.
//
// It compiles the Talos module and machinery at v1.12.0, as the real plugin does (TFT:go.mod:21-22),
// so configs are generated and patched, and the cluster's health checked, by the same code. Where
// it differs from the real plugin: every timeout it is given is compressed by $LAB_TIME_SCALE
// (homelab/lab/simkit/labtime), retries included, so a 10-minute retry loop blocks a scaled 10
// minutes. The health check's timeout is the exception: Talos's checks poll in real time.
package main

import (
	"context"
	"crypto/tls"
	stdx509 "crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/siderolabs/crypto/x509"
	"github.com/siderolabs/image-factory/pkg/schematic"
	"github.com/siderolabs/talos/cmd/talosctl/pkg/talos/action"
	"github.com/siderolabs/talos/pkg/cluster"
	"github.com/siderolabs/talos/pkg/cluster/check"
	"github.com/siderolabs/talos/pkg/conditions"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"
	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/bundle"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	mc "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"golang.org/x/mod/semver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"
	"k8s.io/client-go/tools/clientcmd"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/labtime"
	"homelab/lab/simkit/simprov"
)

func main() {
	simprov.Main(simprov.Provider{
		Name: "talos", Version: "0.7.1",
		Resources: map[string]simprov.Resource{
			"talos:machine/secrets:Secrets": {
				// Replaced only when talosVersion is lowered (TFT:talos_machine_secrets_resource.go:505-539).
				ReplaceIf: func(key string, old, new resource.PropertyValue) bool {
					return key == "talosVersion" && semver.Compare(vPrefix(simprov.StrValue(new)), vPrefix(simprov.StrValue(old))) < 0
				},
				Create: createSecrets,
				Plan:   renewsClientCertificate,
				Update: func(r simprov.Request) (resource.PropertyMap, error) {
					// Only talosVersion is written, and the admin client certificate renewed when it
					// nears expiry; the bundle is never regenerated (:382-500).
					out := r.Olds.Copy()
					out["talosVersion"] = r.News["talosVersion"]
					if len(renewsClientCertificate(r.Olds, r.News)) > 0 {
						return renewClientCertificate(out)
					}
					return out, nil
				},
				Read: importSecrets,
			},
			"talos:machine/configurationApply:ConfigurationApply": {Create: applyConfig, Update: func(r simprov.Request) (resource.PropertyMap, error) {
				_, out, err := applyConfig(r)
				return out, err
			}, Delete: resetOnDestroy},
			"talos:machine/bootstrap:Bootstrap":   {Create: bootstrap},
			"talos:cluster/kubeconfig:Kubeconfig": {Create: kubeconfig, Update: keepKubeconfig, Plan: renewsKubeconfig},
			"talos:imageFactory/schematic:Schematic": {Create: registerSchematic, Update: func(r simprov.Request) (resource.PropertyMap, error) {
				_, out, err := registerSchematic(r)
				return out, err
			}},
		},
		Functions: map[string]func(resource.PropertyMap) (resource.PropertyMap, error){
			"talos:machine/getConfiguration:getConfiguration": machineConfiguration,
			"talos:client/getConfiguration:getConfiguration":  clientConfiguration,
			"talos:cluster/getHealth:getHealth":               health,
		},
	})
}

func vPrefix(v string) string { return "v" + strings.TrimPrefix(v, "v") }

func logEvent(op, node, detail string) {
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "talos-provider", Op: op, Node: node, Detail: detail})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}

func obj(m resource.PropertyMap, key string) resource.PropertyMap {
	v := m[resource.PropertyKey(key)]
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsObject() {
		return v.ObjectValue()
	}
	return resource.PropertyMap{}
}

// --- Secrets -------------------------------------------------------------------------------

// createSecrets generates a bundle for the contract (TFT:talos_machine_secrets_resource.go:250-308).
func createSecrets(r simprov.Request) (string, resource.PropertyMap, error) {
	version := simprov.Str(r.News, "talosVersion")
	if version == "" {
		version = "v1.12" // the provider's default contract (:505-539)
	}
	contract, err := config.ParseContractFromVersion(version)
	if err != nil {
		return "", nil, err
	}
	b, err := secrets.NewBundle(secrets.NewFixedClock(time.Now()), contract)
	if err != nil {
		return "", nil, err
	}
	out, err := secretsModel(b)
	if err != nil {
		return "", nil, err
	}
	out["talosVersion"] = resource.NewStringProperty(version)
	recordBundle(b)
	logEvent("secrets", "", "generated a new cluster identity")
	return "machine_secrets", out, nil
}

// expiresBefore reports whether a base64 PEM certificate expires before t.
func expiresBefore(certB64 string, t time.Time) bool {
	block, _ := pem.Decode(unb64(certB64))
	if block == nil {
		return false
	}
	cert, err := stdx509.ParseCertificate(block.Bytes)
	return err == nil && cert.NotAfter.Before(t)
}

// renewsClientCertificate is the secrets resource's plan modifier: an admin client certificate
// that expires within a month makes the plan renew the client configuration
// (TFT:talos_machine_secrets_resource.go:313-380; the month at :368-369). "Now" is the lab's clock
// (labtime.Now), as the provider's is its OverridableTimeFunc (:37-42).
func renewsClientCertificate(olds, _ resource.PropertyMap) []string {
	cc := obj(olds, "clientConfiguration")
	if simprov.Str(cc, "caCertificate") == "" || !expiresBefore(simprov.Str(cc, "clientCertificate"), labtime.Now().AddDate(0, 1, 0)) {
		return nil
	}
	return []string{"clientConfiguration"}
}

// renewClientCertificate issues a new admin client certificate from the bundle in the state, at
// the real time and for Talos's default year, and writes only the client configuration
// (TFT:talos_machine_secrets_resource.go:449-499, util.go:129-195).
func renewClientCertificate(out resource.PropertyMap) (resource.PropertyMap, error) {
	b := bundleOf(obj(out, "machineSecrets"))
	b.Clock = secrets.NewFixedClock(time.Now())
	model, err := secretsModel(b)
	if err != nil {
		return nil, err
	}
	out["clientConfiguration"] = model["clientConfiguration"]
	logEvent("client-certificate-renewed", "", "")
	return out, nil
}

// renewsKubeconfig is the kubeconfig resource's plan modifier: a Kubernetes client certificate
// that expires within certificateRenewalDuration (default 720h) makes the plan fetch a new
// kubeconfig (TFT:talos_cluster_kubeconfig_resource.go:299-455; the check at :442).
func renewsKubeconfig(olds, _ resource.PropertyMap) []string {
	d, err := time.ParseDuration(simprov.Str(olds, "certificateRenewalDuration"))
	if err != nil {
		d = 720 * time.Hour
	}
	if !expiresBefore(simprov.Str(obj(olds, "kubernetesClientConfiguration"), "clientCertificate"), labtime.Now().Add(d)) {
		return nil
	}
	return []string{"kubeconfigRaw", "kubernetesClientConfiguration"}
}

// recordBundle keeps every bundle the provider made or imported under $LAB_STATE/secrets, so the
// lab tests can look for its secret values where they must not be.
func recordBundle(b *secrets.Bundle) {
	dir := filepath.Join(labevent.Dir(), "secrets")
	_ = os.MkdirAll(dir, 0o700)
	text, err := yaml.Marshal(b)
	if err == nil {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.yaml", time.Now().UnixNano())), text, 0o600)
	}
}

// importSecrets imports a talosctl secrets.yaml by path: the import ID is a file the provider
// reads, and the recorded contract is v1.3 (v1.2 with an AES-CBC secret)
// (TFT:talos_machine_secrets_resource.go:599-642).
func importSecrets(r simprov.Request) (string, resource.PropertyMap, resource.PropertyMap, error) {
	if len(r.Olds) > 0 {
		return r.ID, r.Olds, r.OldInputs, nil // Read is a no-op (:310-311)
	}
	if _, err := os.Stat(r.ID); err != nil {
		return "", nil, nil, fmt.Errorf("failed to import state: %w", err)
	}
	text, err := os.ReadFile(r.ID)
	if err != nil {
		return "", nil, nil, fmt.Errorf("failed to read machine secrets file: %w", err)
	}
	var b secrets.Bundle
	if err := yaml.Unmarshal(text, &b); err != nil {
		return "", nil, nil, fmt.Errorf("failed to unmarshal machine secrets: %w", err)
	}
	out, err := secretsModel(&b)
	if err != nil {
		return "", nil, nil, err
	}
	version := "v1.3"
	if b.Secrets.AESCBCEncryptionSecret != "" {
		version = "v1.2"
	}
	out["talosVersion"] = resource.NewStringProperty(version)
	recordBundle(&b)
	logEvent("secrets-import", "", r.ID)
	return "machine_secrets", out, resource.PropertyMap{"talosVersion": resource.NewStringProperty(version)}, nil
}

// secretsModel is the provider's state of a bundle: base64 PEM certificates and keys, and the
// admin client configuration of the bundle's talosconfig (TFT:util.go:129-195).
func secretsModel(b *secrets.Bundle) (resource.PropertyMap, error) {
	if b.Clock == nil {
		b.Clock = secrets.NewFixedClock(time.Now())
	}
	pair := func(p *x509.PEMEncodedCertificateAndKey) map[string]any {
		if p == nil {
			return map[string]any{"cert": "", "key": ""}
		}
		return map[string]any{"cert": b64(p.Crt), "key": b64(p.Key)}
	}
	sec := map[string]any{"bootstrapToken": b.Secrets.BootstrapToken, "secretboxEncryptionSecret": b.Secrets.SecretboxEncryptionSecret}
	if b.Secrets.AESCBCEncryptionSecret != "" {
		sec["aescbcEncryptionSecret"] = b.Secrets.AESCBCEncryptionSecret
	}
	in, err := generate.NewInput("", "", "", generate.WithSecretsBundle(b))
	if err != nil {
		return nil, err
	}
	tc, err := in.Talosconfig()
	if err != nil {
		return nil, err
	}
	ctx := tc.Contexts[tc.Context]
	return resource.NewPropertyMapFromMap(map[string]any{
		"machineSecrets": map[string]any{
			"cluster":    map[string]any{"id": b.Cluster.ID, "secret": b.Cluster.Secret},
			"secrets":    sec,
			"trustdinfo": map[string]any{"token": b.TrustdInfo.Token},
			"certs": map[string]any{
				"etcd": pair(b.Certs.Etcd), "k8s": pair(b.Certs.K8s), "k8sAggregator": pair(b.Certs.K8sAggregator), "os": pair(b.Certs.OS),
				"k8sServiceaccount": map[string]any{"key": b64(b.Certs.K8sServiceAccount.Key)},
			},
		},
		"clientConfiguration": map[string]any{"caCertificate": ctx.CA, "clientCertificate": ctx.Crt, "clientKey": ctx.Key},
	}), nil
}

// bundleOf turns the provider's model back into a bundle (TFT:util.go:197-284).
func bundleOf(m resource.PropertyMap) *secrets.Bundle {
	cl, sec, td, certs := obj(m, "cluster"), obj(m, "secrets"), obj(m, "trustdinfo"), obj(m, "certs")
	pair := func(k string) *x509.PEMEncodedCertificateAndKey {
		p := obj(certs, k)
		return &x509.PEMEncodedCertificateAndKey{Crt: unb64(simprov.Str(p, "cert")), Key: unb64(simprov.Str(p, "key"))}
	}
	return &secrets.Bundle{
		Cluster:    &secrets.Cluster{ID: simprov.Str(cl, "id"), Secret: simprov.Str(cl, "secret")},
		Secrets:    &secrets.Secrets{BootstrapToken: simprov.Str(sec, "bootstrapToken"), SecretboxEncryptionSecret: simprov.Str(sec, "secretboxEncryptionSecret"), AESCBCEncryptionSecret: simprov.Str(sec, "aescbcEncryptionSecret")},
		TrustdInfo: &secrets.TrustdInfo{Token: simprov.Str(td, "token")},
		Certs: &secrets.Certs{Etcd: pair("etcd"), K8s: pair("k8s"), K8sAggregator: pair("k8sAggregator"), OS: pair("os"),
			K8sServiceAccount: &x509.PEMEncodedKey{Key: unb64(simprov.Str(obj(certs, "k8sServiceaccount"), "key"))}},
		Clock: secrets.NewFixedClock(time.Now()),
	}
}

// --- Talos API access ------------------------------------------------------------------------

// clientConfigOf builds the talosconfig of a client configuration input, context "dynamic"
// (TFT:util.go:403-430).
func clientConfigOf(cc resource.PropertyMap) *clientconfig.Config {
	return clientconfig.NewConfig("dynamic", nil, unb64(simprov.Str(cc, "caCertificate")),
		&x509.PEMEncodedCertificateAndKey{Crt: unb64(simprov.Str(cc, "clientCertificate")), Key: unb64(simprov.Str(cc, "clientKey"))})
}

// talosClientOp probes the node without credentials (a node in maintenance mode answers Disks),
// and uses mutual TLS otherwise (TFT:util.go:295-317).
func talosClientOp(ctx context.Context, endpoint, node string, tc *clientconfig.Config, op func(ctx context.Context, c *client.Client) error) error {
	nodeCtx := client.WithNode(ctx, node)
	c, err := client.New(ctx, client.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}), client.WithEndpoints(endpoint))
	if err != nil {
		return err
	}
	if _, err := c.Disks(nodeCtx); err != nil {
		_ = c.Close()
		if c, err = client.New(ctx, client.WithConfig(tc), client.WithEndpoints(endpoint)); err != nil {
			return err
		}
	}
	defer c.Close() //nolint:errcheck
	return op(nodeCtx, c)
}

// retryUntil runs fn until it succeeds, fails with InvalidArgument, or the timeout passes; then it
// returns fn's last error. Waits start at 0.5 s and double up to 10 s, all compressed
// (TFT call sites such as talos_machine_configuration_apply_resource.go:231-251, with
// terraform-plugin-sdk helper/retry.RetryContext).
func retryUntil(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(labtime.Lab(timeout))
	wait := 500 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if status.Code(err) == codes.InvalidArgument || time.Now().After(deadline) {
			return err
		}
		time.Sleep(labtime.Lab(wait))
		wait = min(wait*2, 10*time.Second)
	}
}

// timeoutOf reads a Go duration from the resource's timeouts, default 10 minutes.
func timeoutOf(m resource.PropertyMap, which string) time.Duration {
	if d, err := time.ParseDuration(simprov.Str(obj(m, "timeouts"), which)); err == nil {
		return d
	}
	return 10 * time.Minute
}

func endpointOf(m resource.PropertyMap) string {
	if e := simprov.Str(m, "endpoint"); e != "" {
		return e
	}
	return simprov.Str(m, "node")
}

// --- ConfigurationApply -----------------------------------------------------------------------

// applyConfig patches the input config (the plan's machine_configuration,
// TFT:talos_machine_configuration_apply_resource.go:634-673) and sends it with the apply mode,
// retrying every error but InvalidArgument until the timeout (:194-269, Update :274-349).
func applyConfig(r simprov.Request) (string, resource.PropertyMap, error) {
	which := "create"
	if r.Olds != nil {
		which = "update"
	}
	node, endpoint := simprov.Str(r.News, "node"), endpointOf(r.News)
	patches, err := configpatcher.LoadPatches(simprov.Strings(r.News, "configPatches"))
	if err != nil {
		return "", nil, err
	}
	out, err := configpatcher.Apply(configpatcher.WithBytes([]byte(simprov.Str(r.News, "machineConfigurationInput"))), patches)
	if err != nil {
		return "", nil, err
	}
	cfg, err := out.Bytes()
	if err != nil {
		return "", nil, err
	}
	mode := strings.ToLower(simprov.Str(r.News, "applyMode"))
	if mode == "" {
		mode = "auto"
	}
	start := time.Now()
	var reply *machine.ApplyConfigurationResponse
	err = retryUntil(timeoutOf(r.News, which), func() error {
		return talosClientOp(context.Background(), endpoint, node, clientConfigOf(obj(r.News, "clientConfiguration")), func(ctx context.Context, c *client.Client) error {
			var err error
			reply, err = c.ApplyConfiguration(ctx, &machine.ApplyConfigurationRequest{
				Mode: machine.ApplyConfigurationRequest_Mode(machine.ApplyConfigurationRequest_Mode_value[strings.ToUpper(mode)]),
				Data: cfg,
			})
			return err
		})
	})
	detail := r.Name + " mode " + mode
	if err != nil {
		labevent.Log(labevent.Dir(), labevent.Event{Actor: "talos-provider", Op: "apply-failed", Node: node, Start: start, End: time.Now(), Detail: detail + ": " + err.Error()})
		return "", nil, fmt.Errorf("Error applying configuration: %w", err)
	}
	if reply != nil && len(reply.Messages) > 0 {
		detail += ": " + reply.Messages[0].ModeDetails
	}
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "talos-provider", Op: "apply", Node: node, Start: start, End: time.Now(), Detail: detail})
	state := r.News.Copy()
	state["machineConfiguration"] = resource.MakeSecret(resource.NewStringProperty(string(cfg)))
	state["resolvedApplyMode"] = resource.NewStringProperty(mode)
	state["endpoint"] = resource.NewStringProperty(endpoint)
	return "machine_configuration_apply", state, nil
}

// resetOnDestroy resets the node when onDestroy.reset is set, wiping STATE and EPHEMERAL, and
// tracks it as talosctl reset does (TFT:talos_machine_configuration_apply_resource.go:360-456).
func resetOnDestroy(r simprov.Request) error {
	od := obj(r.Olds, "onDestroy")
	if len(od) == 0 {
		od = obj(r.OldInputs, "onDestroy")
	}
	if !od["reset"].IsBool() || !od["reset"].BoolValue() {
		return nil
	}
	graceful := !od["graceful"].IsBool() || od["graceful"].BoolValue()
	reboot := od["reboot"].IsBool() && od["reboot"].BoolValue()
	node, endpoint := simprov.Str(r.Olds, "node"), endpointOf(r.Olds)
	req := &machine.ResetRequest{Graceful: graceful, Reboot: reboot, SystemPartitionsToWipe: []*machine.ResetPartitionSpec{
		{Label: "STATE", Wipe: true}, {Label: "EPHEMERAL", Wipe: true}}}
	var post func(context.Context, *client.Client, string) error
	if reboot {
		post = func(ctx context.Context, c *client.Client, bootID string) error {
			insecure, err := client.New(ctx, client.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}), client.WithEndpoints(endpoint))
			if err != nil {
				return err
			}
			defer insecure.Close() //nolint:errcheck
			if _, err := insecure.Disks(client.WithNode(ctx, node)); err == nil {
				return nil
			}
			return action.BootIDChangedPostCheckFn(ctx, c, bootID)
		}
	}
	logEvent("reset", node, fmt.Sprintf("graceful=%t reboot=%t", graceful, reboot))
	err := talosClientOp(context.Background(), endpoint, node, clientConfigOf(obj(r.Olds, "clientConfiguration")), func(_ context.Context, c *client.Client) error {
		return action.NewTracker(&executor{c: c, nodes: []string{node}}, action.StopAllServicesEventFn,
			func(ctx context.Context, c *client.Client) (string, error) {
				resp, err := c.ResetGenericWithResponse(ctx, req)
				if err != nil {
					return "", err
				}
				if len(resp.GetMessages()) == 0 {
					return "", errors.New("no messages returned from action run")
				}
				return resp.GetMessages()[0].GetActorId(), nil
			},
			action.WithPostCheck(post), action.WithDebug(false), action.WithTimeout(labtime.Lab(timeoutOf(r.Olds, "delete")))).Run()
	})
	if err != nil {
		return fmt.Errorf("Error resetting machine: %w", err)
	}
	return nil
}

type executor struct {
	c     *client.Client
	nodes []string
}

func (e *executor) WithClient(fn func(context.Context, *client.Client) error, _ ...grpc.DialOption) error {
	return fn(context.Background(), e.c)
}

func (e *executor) NodeList() []string { return e.nodes }

// --- Bootstrap and kubeconfig ----------------------------------------------------------------

// bootstrap retries Bootstrap until the timeout; only InvalidArgument stops it, so a bootstrapped
// node (AlreadyExists) spins until the timeout (TFT:talos_machine_bootstrap_resource.go:107-172).
func bootstrap(r simprov.Request) (string, resource.PropertyMap, error) {
	node, endpoint := simprov.Str(r.News, "node"), endpointOf(r.News)
	start := time.Now()
	err := retryUntil(timeoutOf(r.News, "create"), func() error {
		return talosClientOp(context.Background(), endpoint, node, clientConfigOf(obj(r.News, "clientConfiguration")), func(ctx context.Context, c *client.Client) error {
			return c.Bootstrap(ctx, &machine.BootstrapRequest{})
		})
	})
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "talos-provider", Op: "bootstrap", Node: node, Start: start, End: time.Now(), Detail: errText(err)})
	if err != nil {
		return "", nil, fmt.Errorf("Error bootstrapping node: %w", err)
	}
	out := r.News.Copy()
	out["endpoint"] = resource.NewStringProperty(endpoint)
	return "machine_bootstrap", out, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// kubeconfig fetches the admin kubeconfig (TFT:talos_cluster_kubeconfig_resource.go:165-288).
func kubeconfig(r simprov.Request) (string, resource.PropertyMap, error) {
	node, endpoint := simprov.Str(r.News, "node"), endpointOf(r.News)
	var raw []byte
	err := retryUntil(timeoutOf(r.News, "create"), func() error {
		return talosClientOp(context.Background(), endpoint, node, clientConfigOf(obj(r.News, "clientConfiguration")), func(ctx context.Context, c *client.Client) error {
			var err error
			raw, err = c.Kubeconfig(ctx)
			return err
		})
	})
	if err != nil {
		return "", nil, fmt.Errorf("failed to retrieve kubeconfig: %w", err)
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return "", nil, err
	}
	kctx := cfg.Contexts[cfg.CurrentContext]
	cl, user := cfg.Clusters[kctx.Cluster], cfg.AuthInfos[kctx.AuthInfo]
	logEvent("kubeconfig", node, "")
	out := r.News.Copy()
	out["kubeconfigRaw"] = resource.MakeSecret(resource.NewStringProperty(string(raw)))
	out["kubernetesClientConfiguration"] = resource.NewObjectProperty(resource.NewPropertyMapFromMap(map[string]any{
		"host": cl.Server, "caCertificate": b64(cl.CertificateAuthorityData),
		"clientCertificate": b64(user.ClientCertificateData), "clientKey": b64(user.ClientKeyData),
	}))
	out["endpoint"] = resource.NewStringProperty(endpoint)
	if simprov.Str(out, "certificateRenewalDuration") == "" {
		out["certificateRenewalDuration"] = resource.NewStringProperty("720h")
	}
	return kctx.Cluster, out, nil
}

// keepKubeconfig is Update: the plan (new inputs) is stored, and the kubeconfig and client
// configuration keep their state values unless the client certificate is close to expiry
// (TFT:talos_cluster_kubeconfig_resource.go:570-733, UseStateForUnknown at :116-149).
func keepKubeconfig(r simprov.Request) (resource.PropertyMap, error) {
	if len(renewsKubeconfig(r.Olds, r.News)) > 0 {
		// Near expiry: a new kubeconfig from the node, with the plan's client configuration (:652-727).
		_, out, err := kubeconfig(simprov.Request{Name: r.Name, News: r.News})
		return out, err
	}
	out := r.News.Copy()
	for _, k := range []resource.PropertyKey{"kubeconfigRaw", "kubernetesClientConfiguration", "endpoint", "certificateRenewalDuration"} {
		if v, ok := r.Olds[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// --- Image Factory ---------------------------------------------------------------------------

// registerSchematic stands in for the factory's POST /schematics: the ID is the schematic's
// content hash, as the factory computes it (TFT:talos_image_factory_schematic_resource.go:84-156).
func registerSchematic(r simprov.Request) (string, resource.PropertyMap, error) {
	s, err := schematic.Unmarshal([]byte(simprov.Str(r.News, "schematic")))
	if err != nil {
		return "", nil, fmt.Errorf("failed to unmarshal schematic: %w", err)
	}
	id, err := s.ID()
	if err != nil {
		return "", nil, err
	}
	logEvent("schematic", "", id)
	return id, r.News.Copy(), nil
}

// --- Functions -------------------------------------------------------------------------------

// machineConfiguration generates a machine config as the provider's data source does
// (TFT:talos_machine_configuration_data_source.go:197-276, TFT:util.go:45-122).
func machineConfiguration(args resource.PropertyMap) (resource.PropertyMap, error) {
	version := simprov.Str(args, "talosVersion")
	if version == "" {
		version = "v1.12"
	}
	contract, err := config.ParseContractFromVersion(version)
	if err != nil {
		return nil, err
	}
	kube := simprov.Str(args, "kubernetesVersion")
	if kube == "" {
		kube = "1.35.0"
	}
	var typ mc.Type
	switch simprov.Str(args, "machineType") {
	case "controlplane":
		typ = mc.TypeControlPlane
	case "worker":
		typ = mc.TypeWorker
	default:
		return nil, fmt.Errorf("invalid machine type %q", simprov.Str(args, "machineType"))
	}
	opts := []generate.Option{
		generate.WithClusterDiscovery(true), generate.WithDNSDomain(constants.DefaultDNSDomain), generate.WithInstallDisk("/dev/sda"),
		generate.WithInstallImage("ghcr.io/siderolabs/installer:v1.12.0"), generate.WithPersist(true),
		generate.WithSecretsBundle(bundleOf(obj(args, "machineSecrets"))), generate.WithVersionContract(contract),
	}
	comments := encoder.CommentsDisabled
	if b := args["docs"]; b.IsBool() && b.BoolValue() {
		comments |= encoder.CommentsDocs
	}
	if b := args["examples"]; b.IsBool() && b.BoolValue() {
		comments |= encoder.CommentsExamples
	}
	bopts := []bundle.Option{bundle.WithInputOptions(&bundle.InputOptions{ClusterName: simprov.Str(args, "clusterName"),
		Endpoint: simprov.Str(args, "clusterEndpoint"), KubeVersion: strings.TrimPrefix(kube, "v"), GenOptions: opts}), bundle.WithVerbose(false)}
	if patches := simprov.Strings(args, "configPatches"); len(patches) > 0 {
		p, err := configpatcher.LoadPatches(patches)
		if err != nil {
			return nil, fmt.Errorf("error parsing config patch: %w", err)
		}
		if typ == mc.TypeControlPlane {
			bopts = append(bopts, bundle.WithPatchControlPlane(p))
		} else {
			bopts = append(bopts, bundle.WithPatchWorker(p))
		}
	}
	b, err := bundle.NewBundle(bopts...)
	if err != nil {
		return nil, fmt.Errorf("failed to generate machine configuration: %w", err)
	}
	text, err := b.Serialize(comments, typ)
	if err != nil {
		return nil, err
	}
	out := args.Copy()
	out["id"] = resource.NewStringProperty(simprov.Str(args, "clusterName"))
	out["machineConfiguration"] = resource.NewStringProperty(string(text))
	return out, nil
}

// clientConfiguration builds a talosconfig (TFT:talos_client_configuration_data_source.go:119-147).
func clientConfiguration(args resource.PropertyMap) (resource.PropertyMap, error) {
	name := simprov.Str(args, "clusterName")
	cc := obj(args, "clientConfiguration")
	tc := clientconfig.NewConfig(name, nil, unb64(simprov.Str(cc, "caCertificate")),
		&x509.PEMEncodedCertificateAndKey{Crt: unb64(simprov.Str(cc, "clientCertificate")), Key: unb64(simprov.Str(cc, "clientKey"))})
	if e := simprov.Strings(args, "endpoints"); len(e) > 0 {
		tc.Contexts[name].Endpoints = e
	}
	if n := simprov.Strings(args, "nodes"); len(n) > 0 {
		tc.Contexts[name].Nodes = n
	}
	text, err := tc.Bytes()
	if err != nil {
		return nil, err
	}
	out := args.Copy()
	out["id"] = resource.NewStringProperty(name)
	out["talosConfig"] = resource.NewStringProperty(string(text))
	return out, nil
}

// health runs Talos's checks from the provider, as talos_cluster_health does
// (TFT:talos_cluster_health_data_source.go:160-272): every check with the given node lists (IP
// addresses only), the Kubernetes checks unless skipped.
func health(args resource.PropertyMap) (resource.PropertyMap, error) {
	cc := obj(args, "clientConfiguration")
	endpoints := simprov.Strings(args, "endpoints")
	cps, workers := simprov.Strings(args, "controlPlaneNodes"), simprov.Strings(args, "workerNodes")
	logEvent("health", "", strings.Join(slices.Concat(cps, workers), ","))
	timeout := 10 * time.Minute
	if d, err := time.ParseDuration(simprov.Str(obj(args, "timeouts"), "read")); err == nil {
		timeout = d
	}
	// Not compressed: Talos's checks poll at their own real-time intervals (every 5 s, 30 s for
	// "all k8s nodes to report", pkg/cluster/check/default.go), so a compressed timeout would
	// cut them short where hardware would pass.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := client.New(ctx, client.WithConfig(clientConfigOf(cc)), client.WithEndpoints(endpoints...))
	if err != nil {
		return nil, fmt.Errorf("failed to create talos client: %w", err)
	}
	defer c.Close() //nolint:errcheck
	cp := &cluster.ConfigClientProvider{DefaultClient: c}
	cpInfos, err := cluster.IPsToNodeInfos(cps)
	if err != nil {
		return nil, fmt.Errorf("failed to generate node infos: %w", err)
	}
	wInfos, err := cluster.IPsToNodeInfos(workers)
	if err != nil {
		return nil, fmt.Errorf("failed to generate node infos: %w", err)
	}
	state := struct {
		cluster.ClientProvider
		cluster.K8sProvider
		cluster.Info
	}{cp, &cluster.KubernetesClient{ClientProvider: cp}, &nodes{cp: cpInfos, w: wInfos}}
	checks := slices.Concat(check.PreBootSequenceChecks(), check.K8sComponentsReadinessChecks())
	if b := args["skipKubernetesChecks"]; !b.IsBool() || !b.BoolValue() {
		checks = check.DefaultClusterChecks()
	}
	var report strings.Builder
	if err := check.Wait(ctx, &state, checks, &reporter{&report}); err != nil {
		logEvent("health-failed", "", err.Error())
		return nil, fmt.Errorf("cluster health check failed: %w\n%s", err, report.String())
	}
	out := args.Copy()
	out["id"] = resource.NewStringProperty("cluster_health")
	return out, nil
}

type nodes struct{ cp, w []cluster.NodeInfo }

func (n *nodes) Nodes() []cluster.NodeInfo { return slices.Concat(n.cp, n.w) }
func (n *nodes) NodesByType(t mc.Type) []cluster.NodeInfo {
	switch t {
	case mc.TypeControlPlane:
		return n.cp
	case mc.TypeWorker:
		return n.w
	}
	return nil
}

type reporter struct{ b *strings.Builder }

func (r *reporter) Update(c conditions.Condition) { fmt.Fprintf(r.b, "waiting for %s\n", c) }
