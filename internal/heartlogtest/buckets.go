package heartlogtest

import (
	"cmp"
	"context"
	"crypto/rand"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"heartlog/objstore"
)

// CountingBucket is a real bucket that counts the objects read from it:
// what a test of "this costs no read" asserts on.
type CountingBucket struct {
	objstore.Bucket
	gets atomic.Int64
}

// Get counts the read and passes it on.
func (b *CountingBucket) Get(ctx context.Context, key string) ([]byte, string, error) {
	b.gets.Add(1)
	return b.Bucket.Get(ctx, key)
}

// Gets is how many objects were read.
func (b *CountingBucket) Gets() int64 { return b.gets.Load() }

// PrivateBuckets creates a primary bucket and a versioned backup bucket of
// the test's own on the stack's S3 server, for a test of something that
// covers a whole bucket (the scheduled backup verify), where the shared
// buckets hold every other test's files. env names them for a heartlog
// command. Both are emptied, every version included, and removed when the
// test ends.
func PrivateBuckets(t testing.TB) (primary, backup *objstore.S3, env []string) {
	t.Helper()
	cfg, err := objstore.ConfigFromEnv("HEARTLOG_S3_")
	if err != nil {
		t.Fatalf("%v: run the tests with `make test`", err)
	}
	client := s3.New(s3.Options{BaseEndpoint: aws.String(cfg.Endpoint), Region: cmp.Or(cfg.Region, objstore.DefaultRegion),
		UsePathStyle: cfg.PathStyle, Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")})
	suffix := strings.ToLower(rand.Text()[:10]) // bucket names are lower case
	open := func(name string, versioned bool) *objstore.S3 {
		t.Helper()
		ctx := context.Background()
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			t.Fatalf("create bucket %s: %v", name, err)
		}
		t.Cleanup(func() { removeBucket(t, client, name) })
		if versioned {
			if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
				VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
				t.Fatalf("versioning on %s: %v", name, err)
			}
		}
		c := cfg
		c.Bucket = name
		b, err := objstore.NewS3(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p, bk := "test-primary-"+suffix, "test-backup-"+suffix
	primary, backup = open(p, false), open(bk, true)
	return primary, backup, []string{"HEARTLOG_S3_BUCKET=" + p, "HEARTLOG_BACKUP_S3_BUCKET=" + bk}
}

// removeBucket deletes every version and delete marker of the bucket,
// then the bucket.
func removeBucket(t testing.TB, client *s3.Client, name string) {
	t.Helper()
	ctx := context.Background()
	pages := s3.NewListObjectVersionsPaginator(client, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Errorf("list the versions of %s: %v", name, err)
			return
		}
		for _, v := range page.Versions {
			deleteVersion(t, client, name, v.Key, v.VersionId)
		}
		for _, m := range page.DeleteMarkers {
			deleteVersion(t, client, name, m.Key, m.VersionId)
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Errorf("delete bucket %s: %v", name, err)
	}
}

func deleteVersion(t testing.TB, client *s3.Client, bucket string, key, version *string) {
	t.Helper()
	if _, err := client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: key, VersionId: version}); err != nil {
		t.Errorf("delete %s of %s: %v", aws.ToString(key), bucket, err)
	}
}
