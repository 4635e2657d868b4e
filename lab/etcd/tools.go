//go:build tools

// Package etcd pins the module graph of the etcd server the lab's Kubernetes API stores its state
// in, and of etcdutl, whose snapshot restore a simulated node runs when it bootstraps etcd from a
// snapshot (the same etcdutl snapshot package Talos's etcd service calls).
package etcd

import (
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
