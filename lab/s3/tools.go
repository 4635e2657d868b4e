//go:build tools

// Package s3 pins the lab's S3-compatible server: versitygw, an S3 gateway over a local directory
// (Apache-2.0), which lab/build builds as the versitygw binary. The lab's etcd snapshots go to it
// as they go to an S3 store on real hardware. Chosen over MinIO, which the Go module proxy serves
// only as a pseudo-version of an AGPL module; gofakes3 is an in-process fake, not a server.
package s3

import _ "github.com/versity/versitygw/cmd/versitygw"
