//go:build tools

// Package kube pins the module graph of the Kubernetes control plane the lab runs
// (k8s.io/kubernetes v1.35.8, its staging modules replaced by the published v0.35.8 ones).
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
