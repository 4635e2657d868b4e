// Package components holds one Pulumi component per concern of a Talos cluster's life: its identity
// (ClusterSecrets), its installer image (InstallerImage), the first install of each node (Install),
// etcd bootstrap and access (Bootstrap), every later config change, upgrade and reboot (Rollout),
// Kubernetes upgrades (KubernetesUpgrade), nodes leaving (NodeRemoval), and the networking
// that replaces Talos's default CNI: Gateway API CRDs (GatewayAPI), Cilium, L2 load balancing
// (L2Announcements) and the removal of Flannel and kube-proxy (CNICleanup); then the secrets
// path from 1Password (OnePasswordConnect, ClusterBackup) and GitOps (ArgoCD).
//
// Every constructor has the shape NewX(ctx, name, args, opts...) (*X, error): it registers the
// component first, parents every child to it, and calls RegisterResourceOutputs last. Args fields
// that decide which resources exist are plain Go values; data that flows between resources is a
// Pulumi input.
package components

// Component type tokens. A rename changes every child's URN: add an alias when you change one.
const (
	clusterSecretsType    = "homelab:talos:ClusterSecrets"
	installerImageType    = "homelab:talos:InstallerImage"
	installType           = "homelab:talos:Install"
	bootstrapType         = "homelab:talos:Bootstrap"
	rolloutType           = "homelab:talos:Rollout"
	kubernetesUpgradeType = "homelab:talos:KubernetesUpgrade"
	nodeRemovalType       = "homelab:talos:NodeRemoval"
	gatewayAPIType        = "homelab:k8s:GatewayAPI"
	ciliumType            = "homelab:k8s:Cilium"
	chartType             = "homelab:k8s:Chart"
	l2Type                = "homelab:k8s:L2Announcements"
	cniCleanupType        = "homelab:k8s:CNICleanup"
	connectType           = "homelab:secrets:OnePasswordConnect"
	backupType            = "homelab:secrets:ClusterBackup"
	argoCDType            = "homelab:gitops:ArgoCD"
)

// NodeTimeout bounds every operation that talks to a node or waits for it: config applies,
// bootstrap, kubeconfig retrieval and health checks. A node's upgrade and reboot in its gate have
// budgets of their own (homelab:rollout.upgradeTimeout and rebootTimeout).
const NodeTimeout = "10m"
