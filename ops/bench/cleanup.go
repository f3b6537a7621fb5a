package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"heartlog/objstore"
)

// Cleanup goes around objstore for speed: deleting tens of thousands of day
// files one DeleteObject (and, for the versioned backup, one
// ListObjectVersions per key: objstore.S3.DeleteAllVersions) at a time took
// minutes on versitygw, whose version listing for one key's prefix costs in
// proportion to the bucket. One pass over the bucket's versions and
// DeleteObjects batches of 1,000 take seconds.

// rawS3 is a plain SDK client for a bucket's configuration.
func rawS3(ctx context.Context, cfg objstore.S3Config) (*s3.Client, error) {
	region := cfg.Region
	if region == "" {
		region = objstore.DefaultRegion
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	}), nil
}

// deleteKeys deletes keys from a bucket with DeleteObjects. With versions,
// it lists every version and delete marker in the bucket once and deletes
// those of keys (the whole history); without, it deletes the keys as they
// are. It returns how many objects or versions it deleted, the keys of
// those the server refused (with the first refusal's reason).
func deleteKeys(ctx context.Context, cfg objstore.S3Config, keys []string, versions bool) (deleted int, refused []string, reason string, err error) {
	c, err := rawS3(ctx, cfg)
	if err != nil {
		return 0, nil, "", err
	}
	start := time.Now()
	// rounds[r] holds at most one version of each key: versitygw refuses
	// ("Invalid version id specified") some deletions of several versions
	// of one key in one DeleteObjects request.
	var rounds [][]types.ObjectIdentifier
	if versions {
		want := make(map[string]int, len(keys))
		for _, k := range keys {
			want[k] = 0
		}
		add := func(key, version *string) {
			n, ok := want[aws.ToString(key)]
			if !ok {
				return
			}
			want[aws.ToString(key)] = n + 1
			if n == len(rounds) {
				rounds = append(rounds, nil)
			}
			rounds[n] = append(rounds[n], types.ObjectIdentifier{Key: key, VersionId: version})
		}
		pages := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(cfg.Bucket)})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return 0, nil, "", fmt.Errorf("list versions of %s: %w", cfg.Bucket, err)
			}
			for _, v := range page.Versions {
				add(v.Key, v.VersionId)
			}
			for _, m := range page.DeleteMarkers {
				add(m.Key, m.VersionId)
			}
		}
	} else {
		ids := make([]types.ObjectIdentifier, 0, len(keys))
		for _, k := range keys {
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(k)})
		}
		rounds = [][]types.ObjectIdentifier{ids}
	}
	if versions {
		fmt.Fprintf(os.Stderr, "bench: listed the versions of %d keys in %s in %s\n", len(keys), cfg.Bucket, time.Since(start).Round(time.Millisecond))
	}
	for _, ids := range rounds {
		d, r, why, err := deleteObjects(ctx, c, cfg.Bucket, ids)
		deleted += d
		refused = append(refused, r...)
		if reason == "" {
			reason = why
		}
		if err != nil {
			return deleted, refused, reason, err
		}
	}
	slices.Sort(refused)
	return deleted, slices.Compact(refused), reason, nil
}

// deleteObjects deletes ids with DeleteObjects, 1,000 a request, four
// requests at a time.
func deleteObjects(ctx context.Context, c *s3.Client, bucket string, ids []types.ObjectIdentifier) (deleted int, refused []string, reason string, err error) {
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := 0; i < len(ids); i += 1000 {
		batch := ids[i:min(i+1000, len(ids))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
				Bucket: aws.String(bucket),
				Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("delete objects in %s: %w", bucket, err))
				return
			}
			for _, e := range out.Errors {
				if reason == "" {
					reason = fmt.Sprintf("%s: %s (version %s)", aws.ToString(e.Code), aws.ToString(e.Message), aws.ToString(e.VersionId))
				}
				refused = append(refused, aws.ToString(e.Key))
			}
			deleted += len(batch) - len(out.Errors)
		}()
	}
	wg.Wait()
	return deleted, refused, reason, errors.Join(errs...)
}
