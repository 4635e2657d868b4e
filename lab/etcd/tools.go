//go:build tools

// Package etcd pins the module graph of the etcd server the lab's Kubernetes API stores its state in.
package etcd

import _ "go.etcd.io/etcd/server/v3"
