// Package etcdbackup takes, keeps and restores the cluster's etcd snapshots (cmd/etcd): a snapshot
// through Talos's API (talosctl etcd snapshot), encrypted with age on the machine that took it,
// stored in the stack's S3-compatible bucket, the oldest deleted beyond homelab:backup.keep; and
// the recovery Talos documents for a lost quorum, driven step by step.
package etcdbackup

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"homelab/internal/stackconfig"
)

// Store is the stack's bucket, under the cluster's folder.
type Store struct {
	client  *minio.Client
	bucket  string
	folder  string // <prefix><cluster>/
	keep    int
	display string // s3://bucket/folder
}

// Refs are shell assignments of the bucket key's secret references, which op run resolves from
// the vault item (fields accessKeyID and secretAccessKey) into the environment of what it runs.
func Refs(vault, item string) string {
	return fmt.Sprintf("export ETCD_BACKUP_ACCESS_KEY_ID='op://%s/%s/accessKeyID' ETCD_BACKUP_SECRET_ACCESS_KEY='op://%s/%s/secretAccessKey'\n", vault, item, vault, item)
}

// OpenStore opens the bucket of homelab:backup with the access key in ETCD_BACKUP_ACCESS_KEY_ID
// and ETCD_BACKUP_SECRET_ACCESS_KEY, which `op run` fills from the vault item homelab:backup.item
// (names of their own: AWS_* may hold the state backend's key, which pulumi stack output needs).
func OpenStore(cluster string, b stackconfig.Backup, vault string) (*Store, error) {
	if b.S3 == nil {
		return nil, fmt.Errorf("homelab:backup.s3 is not set in the stack file: it names the bucket the snapshots go to (docs/operations.md, \"etcd snapshots\")")
	}
	id, secret := os.Getenv("ETCD_BACKUP_ACCESS_KEY_ID"), os.Getenv("ETCD_BACKUP_SECRET_ACCESS_KEY")
	if id == "" || secret == "" || strings.HasPrefix(id, "op://") || strings.HasPrefix(secret, "op://") {
		return nil, fmt.Errorf("the bucket's access key is not in the environment: it comes from the 1Password item %q of vault %q "+
			"(fields accessKeyID and secretAccessKey); run under op run with ETCD_BACKUP_ACCESS_KEY_ID=op://%s/%s/accessKeyID and "+
			"ETCD_BACKUP_SECRET_ACCESS_KEY=op://%s/%s/secretAccessKey (mise run etcd-snapshot does)", b.Item, vault, vault, b.Item, vault, b.Item)
	}
	u, err := url.Parse(b.S3.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("homelab:backup.s3.endpoint: %w", err)
	}
	client, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(id, secret, ""), Secure: u.Scheme == "https", Region: b.S3.Region})
	if err != nil {
		return nil, fmt.Errorf("homelab:backup.s3: %w", err)
	}
	folder := b.S3.Prefix + cluster + "/"
	return &Store{client: client, bucket: b.S3.Bucket, folder: folder, keep: b.Keep, display: "s3://" + b.S3.Bucket + "/" + folder}, nil
}

// object is one stored snapshot.
type object struct {
	Name string
	Size int64
	Time time.Time
}

// snapshots lists the stored snapshots, newest first (their names start with the UTC time they
// were taken, so name order is time order).
func (s *Store) snapshots(ctx context.Context) ([]object, error) {
	var out []object
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.folder}) {
		if o.Err != nil {
			return nil, fmt.Errorf("listing %s: %w", s.display, o.Err)
		}
		name := strings.TrimPrefix(o.Key, s.folder)
		if strings.HasPrefix(name, "etcd-") && strings.HasSuffix(name, ".db.age") {
			out = append(out, object{Name: name, Size: o.Size, Time: o.LastModified})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name > out[j].Name })
	return out, nil
}

// put stores a file under name.
func (s *Store) put(ctx context.Context, name, path string) (int64, error) {
	info, err := s.client.FPutObject(ctx, s.bucket, s.folder+name, path, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return 0, fmt.Errorf("storing %s%s: %w", s.display, name, err)
	}
	return info.Size, nil
}

// get writes the stored snapshot name to path.
func (s *Store) get(ctx context.Context, name, path string) error {
	if err := s.client.FGetObject(ctx, s.bucket, s.folder+name, path, minio.GetObjectOptions{}); err != nil {
		return fmt.Errorf("fetching %s%s: %w", s.display, name, err)
	}
	return os.Chmod(path, 0o600)
}

// prune deletes the snapshots beyond the newest keep and returns their names.
func (s *Store) prune(ctx context.Context) ([]string, error) {
	list, err := s.snapshots(ctx)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for i := s.keep; i < len(list); i++ {
		if err := s.client.RemoveObject(ctx, s.bucket, s.folder+list[i].Name, minio.RemoveObjectOptions{}); err != nil {
			return deleted, fmt.Errorf("deleting %s%s: %w", s.display, list[i].Name, err)
		}
		deleted = append(deleted, list[i].Name)
	}
	return deleted, nil
}

// List writes the stored snapshots, newest first.
func List(ctx context.Context, s *Store, w io.Writer) error {
	list, err := s.snapshots(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d snapshots in %s (keeping the newest %d):\n", len(list), s.display, s.keep)
	for _, o := range list {
		fmt.Fprintf(w, "  %s  %d bytes\n", o.Name, o.Size)
	}
	return nil
}
