package cluster

import (
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/lifecycle"
	"homelab/internal/stackconfig"
)

// buildPlatform builds everything on top of the running cluster, through one Kubernetes provider:
// Gateway API CRDs, Cilium, the handover of every node to it and the clean-up, then, once the
// nodes have settled, L2 load balancing, 1Password Connect and Argo CD; and the cluster backup.
func buildPlatform(ctx *pulumi.Context, cfg *stackconfig.Config, in *inputs, t *talosCluster, v *vault) error {
	k8s, err := components.NewClusterProvider(ctx, "kubernetes", cfg.Cluster.Name, t.boot.Kubeconfig)
	if err != nil {
		return err
	}
	renderer, err := components.NewChartRenderer(ctx, "chart-renderer")
	if err != nil {
		return err
	}
	charts := components.ChartRendering{Renderer: renderer, KubeVersion: cfg.Cluster.KubernetesVersion,
		APIVersions: components.CRDAPIVersions(in.net.GatewayAPICRDs)}
	onCluster := pulumi.Provider(k8s)
	gateway, err := components.NewGatewayAPI(ctx, "gateway-api", &components.GatewayAPIArgs{CRDs: in.net.GatewayAPICRDs}, onCluster)
	if err != nil {
		return err
	}
	cilium, err := components.NewCilium(ctx, "cilium", &components.CiliumArgs{Version: cfg.Networking.Cilium.Version,
		Values: in.net.CiliumValues, GatewayAPI: gateway, Nodes: len(cfg.Cluster.Nodes), Rendering: charts}, onCluster)
	if err != nil {
		return err
	}
	rollout, err := components.NewRollout(ctx, "config", &components.RolloutArgs{Cluster: cfg.Cluster, Talos: in.talos,
		BaseConfigs: t.base, ClientConfiguration: t.secrets.ClientConfiguration, Install: t.install,
		Kubeconfig: t.boot.Kubeconfig, After: []pulumi.Resource{cilium.Chart, t.k8s.Command}, CheckCilium: true,
		ResetOnDestroy: cfg.Cluster.ResetOnDestroy, Budgets: cfg.Rollout})
	if err != nil {
		return err
	}
	cleanup, err := components.NewCNICleanup(ctx, "cni-cleanup", &components.CNICleanupArgs{Script: in.net.CleanupScript,
		Kubeconfig: t.boot.Kubeconfig, Rollout: rollout})
	if err != nil {
		return err
	}
	// Everything else on the cluster waits for the nodes to settle: the API endpoint's node
	// reboots during a rollout.
	settled := []pulumi.Resource{cleanup.Command}
	if len(in.net.L2) > 0 {
		if _, err := components.NewL2Announcements(ctx, "l2", &components.L2AnnouncementsArgs{Objects: in.net.L2, Cilium: cilium,
			After: settled}, onCluster); err != nil {
			return err
		}
	}

	if _, err := components.NewClusterBackup(ctx, "backup", &components.ClusterBackupArgs{VaultUUID: v.BackupVaultUUID,
		Title: cfg.OnePassword.BackupItem, Secrets: t.secrets, Talosconfig: t.boot.Talosconfig, Existing: v.BackupID,
		StackTag:  components.StackTag(ctx.Project(), ctx.Stack()),
		Deletable: in.plan.Backup.Step != lifecycle.BackupStay}); err != nil {
		return err
	}
	// The operator syncs OnePasswordItems only in the namespaces that hold the program's own (Argo
	// CD's admin secret) and those the stack lists.
	watch := slices.Clone(cfg.OnePassword.WatchNamespaces)
	if in.argocd != nil && !slices.Contains(watch, in.argocd.AdminSecret.Namespace) {
		watch = append(watch, in.argocd.AdminSecret.Namespace)
	}
	slices.Sort(watch)
	connect, err := components.NewOnePasswordConnect(ctx, "onepassword", &components.OnePasswordConnectArgs{
		Version: cfg.OnePassword.ConnectChart.Version, Data: in.connect, Credentials: v.ConnectCredentials,
		Token: v.Token, WatchNamespaces: watch, Cilium: cilium, Rendering: charts, After: settled}, onCluster)
	if err != nil {
		return err
	}
	if in.argocd != nil {
		if _, err := components.NewArgoCD(ctx, "argocd", &components.ArgoCDArgs{Version: cfg.ArgoCD.Chart.Version,
			Data: in.argocd, Connect: connect, Cilium: cilium, Rendering: charts, After: settled}, onCluster); err != nil {
			return err
		}
	}
	return nil
}
