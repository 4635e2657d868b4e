//go:build tools

// Package kwok pins the module graph of KWOK, which plays the kubelet of the lab's simulated nodes.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
