// Package lab holds test-only code: simulators of the Talos, Kubernetes, command and 1Password
// providers and fakes of talosctl and kubectl, so the real Pulumi engine can run the real program
// against simulated nodes (lab_test.go at the repository root). The program never imports it.
package lab
