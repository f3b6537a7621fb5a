package objstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Defaults that NewS3 applies to zero fields of S3Config.
const (
	// DefaultMaxAttempts is the number of attempts (first try included)
	// for one request. The SDK's default is 3, too few to ride out a burst
	// of SlowDown answers from a rate-limited bucket (Spaces allows about
	// 500 requests/s in total).
	DefaultMaxAttempts = 10
	// DefaultMaxBackoff caps the delay before one retry. Throttling
	// errors back off from 1 s (1, 2, 4, 8, 16, 20, 20 ... s, times a
	// random factor in [0, 1): full jitter); other retryable errors from
	// 50 ms. With the defaults a request gives up after about a minute of
	// backing off on average (two in the worst case).
	DefaultMaxBackoff = 20 * time.Second
	// DefaultTimeout bounds one HTTP attempt (connect, send, response
	// and reading the body); retries get a fresh timeout. The whole
	// operation is bounded by the caller's context.
	DefaultTimeout = 30 * time.Second
	// DefaultRegion is used when neither S3Config.Region nor the SDK's
	// default chain (AWS_REGION, shared config) names one. Local servers
	// and Spaces accept any region in the signature.
	DefaultRegion = "us-east-1"
	// DefaultContentType is the Content-Type of every Put: day files are
	// gzip-compressed NDJSON.
	DefaultContentType = "application/gzip"

	// maxIdleConnsPerHost keeps enough idle connections for the
	// processors' parallel GETs and PUTs to one endpoint (net/http keeps
	// 2 by default, the SDK 10; every connection above that is a new TCP
	// and TLS handshake).
	maxIdleConnsPerHost = 512
)

// S3Config configures an S3 (or S3-compatible) bucket. Zero values mean
// the defaults documented on each field.
type S3Config struct {
	// Endpoint is the base URL of the server, for example
	// "http://127.0.0.1:57070" or "https://fra1.digitaloceanspaces.com".
	// Empty means AWS S3 (the SDK resolves the endpoint from the region).
	Endpoint string
	// Region signs requests. Empty: the SDK default chain, else
	// DefaultRegion.
	Region string
	// Bucket is required.
	Bucket string
	// AccessKeyID and SecretAccessKey are static credentials. Both empty:
	// the SDK default chain (environment, shared files, instance role).
	// One without the other is an error.
	AccessKeyID     string
	SecretAccessKey string
	// PathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead
	// of <bucket>.<endpoint>/<key>; local servers (versitygw, MinIO) need it.
	PathStyle bool
	// MaxAttempts is the number of attempts per request, first included.
	// Zero: DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the delay before one retry. Zero: DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Timeout bounds one HTTP attempt. Zero: DefaultTimeout.
	Timeout time.Duration
	// ContentType is sent with every Put. Empty: DefaultContentType.
	ContentType string
}

const redacted = "<redacted>"

// String describes the configuration with the secret access key redacted,
// so a config can be logged or put into an error message.
func (c S3Config) String() string {
	secret := ""
	if c.SecretAccessKey != "" {
		secret = redacted
	}
	return fmt.Sprintf("S3Config{Endpoint:%q Region:%q Bucket:%q AccessKeyID:%q SecretAccessKey:%q PathStyle:%t MaxAttempts:%d MaxBackoff:%s Timeout:%s ContentType:%q}",
		redactURL(c.Endpoint), c.Region, c.Bucket, c.AccessKeyID, secret, c.PathStyle, c.MaxAttempts, c.MaxBackoff, c.Timeout, c.ContentType)
}

// GoString redacts like String, for %#v.
func (c S3Config) GoString() string { return "objstore." + c.String() }

// MarshalJSON writes the configuration with the secret redacted (for
// structured loggers that marshal values, zerolog's Interface for example).
func (c S3Config) MarshalJSON() ([]byte, error) {
	type plain S3Config // no methods: no recursion
	p := plain(c)
	p.Endpoint = redactURL(p.Endpoint)
	if p.SecretAccessKey != "" {
		p.SecretAccessKey = redacted
	}
	return json.Marshal(p)
}

// ConfigFromEnv reads prefix+ENDPOINT, REGION, BUCKET, ACCESS_KEY_ID,
// SECRET_ACCESS_KEY and PATH_STYLE, for example with prefix "HEARTLOG_S3_"
// (primary bucket) or "HEARTLOG_BACKUP_S3_" (backup bucket). The bucket is
// required; the rest may be unset (see S3Config for what that means).
// Errors name the variable and never contain its value when it is a
// secret. Retry and timeout fields are left zero (the defaults).
func ConfigFromEnv(prefix string) (S3Config, error) {
	get := func(name string) string { return strings.TrimSpace(os.Getenv(prefix + name)) }
	cfg := S3Config{
		Endpoint:        get("ENDPOINT"),
		Region:          get("REGION"),
		Bucket:          get("BUCKET"),
		AccessKeyID:     get("ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv(prefix + "SECRET_ACCESS_KEY"),
	}
	if cfg.Bucket == "" {
		return S3Config{}, fmt.Errorf("objstore: %sBUCKET is not set (the bucket name is required)", prefix)
	}
	if v := get("PATH_STYLE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return S3Config{}, fmt.Errorf("objstore: %sPATH_STYLE=%q is not a boolean (true or false)", prefix, v)
		}
		cfg.PathStyle = b
	}
	if cfg.Endpoint != "" && !isHTTPURL(cfg.Endpoint) {
		return S3Config{}, fmt.Errorf("objstore: %sENDPOINT=%q is not an http:// or https:// URL", prefix, redactURL(cfg.Endpoint))
	}
	if cfg.AccessKeyID != "" && cfg.SecretAccessKey == "" {
		return S3Config{}, fmt.Errorf("objstore: %sACCESS_KEY_ID is set but %sSECRET_ACCESS_KEY is not: set both, or neither for the default AWS credential chain", prefix, prefix)
	}
	if cfg.AccessKeyID == "" && cfg.SecretAccessKey != "" {
		return S3Config{}, fmt.Errorf("objstore: %sSECRET_ACCESS_KEY is set but %sACCESS_KEY_ID is not: set both, or neither for the default AWS credential chain", prefix, prefix)
	}
	if err := cfg.validate(); err != nil {
		return S3Config{}, fmt.Errorf("objstore: %s*: %w", prefix, err)
	}
	return cfg, nil
}

// redactURL hides a password in a URL's user info (nobody should put one
// there, but a config dump must not leak it if they do).
func redactURL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return redacted
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (c S3Config) validate() error {
	if c.Bucket == "" {
		return errors.New("bucket is required")
	}
	if c.Endpoint != "" && !isHTTPURL(c.Endpoint) {
		return fmt.Errorf("endpoint %q is not an http:// or https:// URL", redactURL(c.Endpoint))
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return errors.New("AccessKeyID and SecretAccessKey go together: set both, or neither for the default AWS credential chain")
	}
	if c.MaxAttempts < 0 || c.MaxBackoff < 0 || c.Timeout < 0 {
		return errors.New("MaxAttempts, MaxBackoff and Timeout must not be negative")
	}
	return nil
}

// S3 is a Bucket (and Versioned) on an S3-compatible server.
type S3 struct {
	client      *s3.Client
	bucket      string
	contentType string
}

var (
	_ Bucket    = (*S3)(nil)
	_ Versioned = (*S3)(nil)
)

// NewS3 builds the client; it does not contact the server.
//
// Retries use the SDK's standard retryer: 5xx (500, 502, 503, 504), 429,
// throttling codes (SlowDown among them), connection errors and timeouts
// are retried up to MaxAttempts with exponential backoff and full jitter,
// capped at MaxBackoff. The SDK's client-side retry quota is disabled
// (ratelimit.None): by default each client's retryer holds a bucket of 500
// retry tokens, a throttled retry costs 5 and another retry 14, and only
// successes give tokens back, so after about 100 throttled retries in a
// burst from Spaces every further failing request fails at once with
// "retry quota exceeded" instead of backing off (TestRetryQuota shows it). The server's throttling, the backoff and
// the processors' own bounded parallelism are the rate control instead.
//
// Request checksums stay at the SDK default (CRC32 on PutObject), which
// versitygw and Spaces accept.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	return newS3(ctx, cfg)
}

// newS3 takes extra retryer options for tests (the quota test puts the
// default retry quota back).
func newS3(ctx context.Context, cfg S3Config, retryOpts ...func(*retry.StandardOptions)) (*S3, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("objstore: bucket %q: %w", cfg.Bucket, err)
	}
	maxAttempts := cfg.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	maxBackoff := cfg.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = DefaultMaxBackoff
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	contentType := cfg.ContentType
	if contentType == "" {
		contentType = DefaultContentType
	}

	httpClient := awshttp.NewBuildableClient().
		WithTimeout(timeout).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = 0 // no total cap; the per-host cap applies
			tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
		})
	retryer := retry.NewStandard(append([]func(*retry.StandardOptions){func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
	}}, retryOpts...)...)

	loadOpts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: bucket %q: load AWS config: %w", cfg.Bucket, err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}

	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		o.Retryer = retryer
		// AWS_MAX_ATTEMPTS in the environment would wrap the retryer
		// with another attempt count; MaxAttempts is the one knob.
		o.RetryMaxAttempts = 0
		o.APIOptions = append(o.APIOptions, addRetryCounter)
	})
	return &S3{client: client, bucket: cfg.Bucket, contentType: contentType}, nil
}

// Name returns the bucket name.
func (b *S3) Name() string { return b.bucket }

// Get implements Bucket.
func (b *S3) Get(ctx context.Context, key string) ([]byte, string, error) {
	data, etag, err := b.get(ctx, key, "")
	if err != nil {
		return nil, "", b.wrap("get", key, err)
	}
	return data, etag, nil
}

// GetVersion implements Versioned.
func (b *S3) GetVersion(ctx context.Context, key, versionID string) ([]byte, error) {
	if versionID == "" {
		return nil, fmt.Errorf("objstore: get version of %s/%s: empty version id", b.bucket, key)
	}
	data, _, err := b.get(ctx, key, versionID)
	if err != nil {
		return nil, b.wrap("get version "+versionID+" of", key, err)
	}
	return data, nil
}

func (b *S3) get(ctx context.Context, key, versionID string) ([]byte, string, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return nil, "", err
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 && n < 1<<30 {
		buf.Grow(int(n))
	}
	// Reading the body is outside the SDK's retry loop: a connection cut
	// here is returned to the caller (whose own retry re-reads it).
	if _, err := io.Copy(&buf, out.Body); err != nil {
		return nil, "", fmt.Errorf("read body: %w", err)
	}
	return buf.Bytes(), unquote(aws.ToString(out.ETag)), nil
}

// Put implements Bucket. The body goes out as a seekable reader, so the SDK
// computes the checksum up front and rewinds it for each retry.
func (b *S3) Put(ctx context.Context, key string, data []byte) (string, error) {
	out, err := b.client.PutObject(ctx, b.putInput(key, data))
	if err != nil {
		return "", b.wrap("put", key, err)
	}
	return unquote(aws.ToString(out.ETag)), nil
}

// PutIfMatch implements Bucket with S3's conditional writes (If-Match, or
// If-None-Match: * for a new key).
//
// A retried attempt can meet its own earlier attempt's write (stored, but
// the answer was lost) and fail the condition; the caller then reads the
// object back, finds its own content and has nothing to write.
func (b *S3) PutIfMatch(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	in := b.putInput(key, data)
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(`"` + ifMatch + `"`)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		if isConditionFailed(err) {
			return "", fmt.Errorf("objstore: put %s/%s if %s: %w: %w", b.bucket, key, condition(ifMatch), ErrPreconditionFailed, err)
		}
		return "", b.wrap("put", key, err)
	}
	return unquote(aws.ToString(out.ETag)), nil
}

func (b *S3) putInput(key string, data []byte) *s3.PutObjectInput {
	return &s3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String(b.contentType),
	}
}

func condition(ifMatch string) string {
	if ifMatch == "" {
		return "absent"
	}
	return "etag " + ifMatch
}

// isConditionFailed reports a conditional write refused: 412
// PreconditionFailed, 409 ConditionalRequestConflict (a concurrent write to
// the key), or, on AWS, 404 NoSuchKey for If-Match on a deleted key.
func isConditionFailed(err error) bool {
	if isNotFound(err) {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

// Delete implements Bucket.
func (b *S3) Delete(ctx context.Context, key string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err != nil && !isNotFound(err) {
		return b.wrap("delete", key, err)
	}
	return nil
}

// List implements Bucket: the keys of Objects.
func (b *S3) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for obj, err := range b.Objects(ctx, prefix) {
			if !yield(obj.Key, err) {
				return
			}
		}
	}
}

// Objects implements Bucket with ListObjectsV2 (1000 keys a page).
func (b *S3) Objects(ctx context.Context, prefix string) iter.Seq2[Object, error] {
	return func(yield func(Object, error) bool) {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket)}
		if prefix != "" {
			in.Prefix = aws.String(prefix)
		}
		pages := s3.NewListObjectsV2Paginator(b.client, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(Object{}, b.wrap("list", prefix+"*", err))
				return
			}
			for _, obj := range page.Contents {
				if !yield(Object{Key: aws.ToString(obj.Key), ETag: unquote(aws.ToString(obj.ETag))}, nil) {
					return
				}
			}
		}
	}
}

// Versions implements Versioned.
func (b *S3) Versions(ctx context.Context, key string) ([]Version, error) {
	var versions []Version
	err := b.eachVersion(ctx, key, func(v types.ObjectVersion) {
		versions = append(versions, Version{
			ID:           aws.ToString(v.VersionId),
			ETag:         unquote(aws.ToString(v.ETag)),
			IsLatest:     aws.ToBool(v.IsLatest),
			LastModified: aws.ToTime(v.LastModified),
		})
	}, nil)
	if err != nil {
		return nil, b.wrap("list versions of", key, err)
	}
	return versions, nil
}

// DeleteAllVersions removes every version and delete marker of key: the
// object and its history are gone for good. It is not part of Versioned on
// purpose (the backup's history is the point of it); tests and retention
// tooling use it. On an unversioned bucket it deletes the object.
func (b *S3) DeleteAllVersions(ctx context.Context, key string) error {
	var ids []string
	add := func(id *string) { ids = append(ids, aws.ToString(id)) }
	err := b.eachVersion(ctx, key,
		func(v types.ObjectVersion) { add(v.VersionId) },
		func(m types.DeleteMarkerEntry) { add(m.VersionId) })
	if err != nil {
		return b.wrap("list versions of", key, err)
	}
	for _, id := range ids {
		if err := b.DeleteVersion(ctx, key, id); err != nil {
			return err
		}
	}
	return nil
}

// DeleteVersion removes one version or delete marker of key for good (an
// Entry of History). Like DeleteAllVersions it is not part of Versioned:
// only `heartlog users delete --purge-backups` and tests erase history. A
// version already gone is not an error.
func (b *S3) DeleteVersion(ctx context.Context, key, versionID string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String(key), VersionId: aws.String(versionID),
	})
	if err != nil && !isNotFound(err) {
		return b.wrap("delete version "+versionID+" of", key, err)
	}
	return nil
}

// eachVersion pages through ListObjectVersions for exactly key.
func (b *S3) eachVersion(ctx context.Context, key string, version func(types.ObjectVersion), marker func(types.DeleteMarkerEntry)) error {
	pages := s3.NewListObjectVersionsPaginator(b.client, &s3.ListObjectVersionsInput{
		Bucket: aws.String(b.bucket),
		Prefix: aws.String(key),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, v := range page.Versions {
			if aws.ToString(v.Key) == key && version != nil {
				version(v)
			}
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) == key && marker != nil {
				marker(m)
			}
		}
	}
	return nil
}

// wrap names the operation, bucket and key, and marks missing objects with
// ErrNotFound. SDK errors carry no credentials.
func (b *S3) wrap(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("objstore: %s %s/%s: %w: %w", op, b.bucket, key, ErrNotFound, err)
	}
	return fmt.Errorf("objstore: %s %s/%s: %w", op, b.bucket, key, err)
}

// isNotFound reports a missing key or version. It goes by the S3 error
// code, not the HTTP status: NoSuchBucket is a 404 too, and must not read
// as an empty day file.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NoSuchVersion":
			return true
		}
	}
	return false
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// retryCounterKey carries a *retryCounter that the S3 client adds its
// retries to (see Instrument). Counters nest, so an instrumented bucket
// wrapped in another one reports to both.
type retryCounterKey struct{}

type retryCounter struct {
	n      atomic.Int64
	parent *retryCounter
}

func (c *retryCounter) add(n int64) {
	for ; c != nil; c = c.parent {
		c.n.Add(n)
	}
}

func (c *retryCounter) Load() int64 { return c.n.Load() }

func withRetryCounter(ctx context.Context) (context.Context, *retryCounter) {
	parent, _ := ctx.Value(retryCounterKey{}).(*retryCounter)
	c := &retryCounter{parent: parent}
	return context.WithValue(ctx, retryCounterKey{}, c), c
}

// addRetryCounter wraps the SDK's retry loop ("Retry" in the finalize
// step): after it returns, its attempt results say how many attempts the
// request took, failed requests included.
func addRetryCounter(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("HeartlogRetryCounter",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleFinalize(ctx, in)
			if c, ok := ctx.Value(retryCounterKey{}).(*retryCounter); ok {
				if res, ok := retry.GetAttemptResults(md); ok && len(res.Results) > 1 {
					c.add(int64(len(res.Results) - 1))
				}
			}
			return out, md, err
		}), "Retry", middleware.Before)
}

// DeleteIfMatch removes key only if its current ETag is ifMatch (S3's
// conditional DeleteObject, If-Match). A key that changed since the caller
// read it is left as it is and the error matches ErrPreconditionFailed; a
// key that no longer exists matches it too (on AWS a conditional delete of
// a missing key is 404). Servers that ignore the condition delete
// unconditionally (see CheckConditionalWrites for the writes).
func (b *S3) DeleteIfMatch(ctx context.Context, key, ifMatch string) error {
	if ifMatch == "" {
		return fmt.Errorf("objstore: delete %s/%s: empty ETag condition", b.bucket, key)
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String(key), IfMatch: aws.String(`"` + ifMatch + `"`),
	})
	if err != nil {
		if isConditionFailed(err) {
			return fmt.Errorf("objstore: delete %s/%s if %s: %w: %w", b.bucket, key, condition(ifMatch), ErrPreconditionFailed, err)
		}
		return b.wrap("delete", key, err)
	}
	return nil
}

// History implements Historian with ListObjectVersions over prefix: every
// version and delete marker of every key under it, 1000 a request. A
// version's LastModified is when it was written (see created for
// versitygw's noncurrent versions). Per key
// the entries come newest first; keys come in ascending order (a key's
// versions and its markers may arrive on different pages: collect by key
// before deciding).
func (b *S3) History(ctx context.Context, prefix string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		in := &s3.ListObjectVersionsInput{Bucket: aws.String(b.bucket)}
		if prefix != "" {
			in.Prefix = aws.String(prefix)
		}
		pages := s3.NewListObjectVersionsPaginator(b.client, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(Entry{}, b.wrap("list versions of", prefix+"*", err))
				return
			}
			for _, v := range page.Versions {
				e := Entry{Key: aws.ToString(v.Key), Version: Version{
					ID: aws.ToString(v.VersionId), ETag: unquote(aws.ToString(v.ETag)),
					IsLatest: aws.ToBool(v.IsLatest), LastModified: created(aws.ToString(v.VersionId), aws.ToTime(v.LastModified)),
				}}
				if !yield(e, nil) {
					return
				}
			}
			for _, m := range page.DeleteMarkers {
				e := Entry{Key: aws.ToString(m.Key), DeleteMarker: true, Version: Version{
					ID: aws.ToString(m.VersionId), IsLatest: aws.ToBool(m.IsLatest), LastModified: markerCreated(aws.ToString(m.VersionId), aws.ToTime(m.LastModified)),
				}}
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}
