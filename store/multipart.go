package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Multipart uploads exist because a deployed Function URL takes about
// 4.7 MB of binary per request: larger files go to the backend in parts,
// and the handler, which still decides names, limits and auth, commits
// them. The part URLs come from the backend when it can presign them
// (PartPresigner, S3) and from the handler otherwise (PartWriter, the
// directory store).

var (
	// ErrUploadNotFound: no upload has this ID (never created, aborted,
	// completed, or swept after its TTL).
	ErrUploadNotFound = errors.New("store: upload not found")
	// ErrUploadMismatch: the parts named at completion, or the bytes they
	// hold, do not match the upload's declaration (a missing or unknown
	// part, a stale ETag, a wrong part or total size).
	ErrUploadMismatch = errors.New("store: upload does not match its declaration")
	// ErrInvalidUpload: a declaration breaks Upload.Validate's rules (other
	// than the name's, ErrInvalidName, and the size's upper bound,
	// ErrUploadTooLarge).
	ErrInvalidUpload = errors.New("store: invalid upload declaration")
	// ErrUploadTooLarge: a declared size over MaxUploadSize.
	ErrUploadTooLarge = errors.New("store: upload larger than parts can hold")
)

// Limits on multipart uploads; S3's own.
const (
	MinPartSize     = 5 << 20
	MaxPartSize     = 5 << 30
	MaxPartCount    = 10000
	DefaultPartSize = 16 << 20
	// MaxUploadSize is the most MaxPartCount parts of MaxPartSize can hold.
	MaxUploadSize = MaxPartCount * MaxPartSize
)

// PartSizeFor returns the part size for a file of size bytes: the default,
// or, for files that would need more than MaxPartCount parts, the smallest
// multiple of 1 MiB that fits them in MaxPartCount.
func PartSizeFor(size int64) int64 {
	p := int64(DefaultPartSize)
	if need := (size + MaxPartCount - 1) / MaxPartCount; need > p {
		p = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return p
}

// NewUploadID returns a fresh upload ID: 128 random bits in upper-case
// base32, URL-safe and unguessable.
func NewUploadID() string { return rand.Text() }

// uploadIDLen is the length of NewUploadID's IDs, taken from rand.Text
// itself so that IDs stay valid if it ever returns longer ones.
var uploadIDLen = len(rand.Text())

// ValidUploadID reports whether id has the form NewUploadID gives. The
// handler and the stores refuse anything else, as an unknown upload, before
// an ID gets near a store, a key or a path. It is the one rule for IDs: a
// looser one in front of a store (any URL-safe string, say) would let IDs
// through that no store issued, such as the lower-case twin of a real one,
// which a case-insensitive filesystem would take for the real one.
func ValidUploadID(id string) bool {
	if len(id) != uploadIDLen {
		return false
	}
	for i := range len(id) {
		if c := id[i]; !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// Upload is a multipart upload in progress: what was declared when it was
// created, and how it is cut into parts.
type Upload struct {
	ID     string // NewUploadID's, set by the store: URL-safe and unguessable
	Name   string // a name ValidateName accepted
	Size   int64  // the exact total size, at least 1
	SHA256 string // lower-case hex digest of the whole file; "" when none was declared
	// CRC64NVME is the whole file's CRC-64/NVME in EncodeCRC64NVME's
	// form; "" when none was declared.
	CRC64NVME string
	// PartCRC64NVME, when declared, holds each part's CRC-64/NVME, part n
	// at n-1, so that a part whose bytes do not match is refused when it
	// is sent: S3 checks the value its presigned URL signs, the handler
	// the parts it takes itself. Nil when none were declared.
	PartCRC64NVME []string
	PartSize      int64     // every part but the last holds exactly PartSize bytes
	Created       time.Time // set by the store
}

// CheckPartCRC64NVME reports whether the declared part checksums, if any,
// are one well-formed value per part.
func (u Upload) CheckPartCRC64NVME() error {
	if u.PartCRC64NVME == nil {
		return nil
	}
	if len(u.PartCRC64NVME) != u.PartCount() {
		return fmt.Errorf("%w: %d part checksums declared for %d parts", ErrBadCRC64NVME, len(u.PartCRC64NVME), u.PartCount())
	}
	for _, c := range u.PartCRC64NVME {
		if _, err := ParseCRC64NVME(c); err != nil {
			return err
		}
	}
	return nil
}

// PartCRC64NVMEOf returns the declared CRC-64/NVME of part n, or "" when
// none was declared.
func (u Upload) PartCRC64NVMEOf(n int) string {
	if n < 1 || n > len(u.PartCRC64NVME) {
		return ""
	}
	return u.PartCRC64NVME[n-1]
}

// Validate reports whether u is a declaration a store can take: the rules
// are written here once, for the handler and every store. It checks, in
// this order, so that a declaration wrong in two ways gets the earlier
// error: the name (ErrInvalidName), the size, at least 1 (ErrInvalidUpload)
// and at most MaxUploadSize (ErrUploadTooLarge), the part size, from 1 to
// MaxPartSize, and the part count, at most MaxPartCount (ErrInvalidUpload),
// and SHA256, empty or as ParseSHA256 returns it (ErrInvalidUpload). A
// backend may have limits of its own beyond these (S3's MinPartSize).
func (u Upload) Validate() error {
	if err := ValidateName(u.Name); err != nil {
		return err
	}
	switch {
	case u.Size < 1:
		return fmt.Errorf("%w: size must be at least 1, not %d", ErrInvalidUpload, u.Size)
	case u.Size > MaxUploadSize:
		return fmt.Errorf("%w: size %d is over %d", ErrUploadTooLarge, u.Size, int64(MaxUploadSize))
	case u.PartSize < 1 || u.PartSize > MaxPartSize:
		return fmt.Errorf("%w: part size %d is not from 1 to %d", ErrInvalidUpload, u.PartSize, int64(MaxPartSize))
	case u.PartCount() > MaxPartCount:
		return fmt.Errorf("%w: %d parts, over the %d-part limit", ErrInvalidUpload, u.PartCount(), MaxPartCount)
	}
	if u.SHA256 != "" {
		if sum, err := ParseSHA256(u.SHA256); err != nil {
			return err
		} else if sum != u.SHA256 {
			return fmt.Errorf("%w: sha256 must be in lower case", ErrInvalidUpload)
		}
	}
	if u.CRC64NVME != "" {
		if _, err := ParseCRC64NVME(u.CRC64NVME); err != nil {
			return err
		}
	}
	return u.CheckPartCRC64NVME()
}

// ParseSHA256 checks a declared SHA-256, 64 hex digits in either case, and
// returns it in lower case; "" when none was declared.
func ParseSHA256(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) != 2*sha256.Size {
		return "", fmt.Errorf("%w: sha256 must be %d hex digits, not %d characters", ErrInvalidUpload, 2*sha256.Size, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%w: sha256 must be %d hex digits", ErrInvalidUpload, 2*sha256.Size)
	}
	return strings.ToLower(s), nil
}

// PartCount returns how many parts the upload has.
func (u Upload) PartCount() int {
	if u.PartSize <= 0 || u.Size <= 0 {
		return 0
	}
	return int((u.Size + u.PartSize - 1) / u.PartSize)
}

// PartSizeOf returns the size of part n (1-based), or -1 when the upload
// has no part n.
func (u Upload) PartSizeOf(n int) int64 {
	count := u.PartCount()
	switch {
	case n < 1 || n > count:
		return -1
	case n < count:
		return u.PartSize
	}
	return u.Size - int64(count-1)*u.PartSize
}

// Part is a part the store has received.
type Part struct {
	Number int    `json:"n"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"` // quoted and opaque; it changes when the part's bytes do
}

// Completed is the file a completed upload became.
type Completed struct {
	Info
	// SHA256 is the lower-case hex digest of the stored bytes, or the one
	// the client declared when SHA256Declared; "" when neither is known.
	SHA256 string
	// SHA256Declared: SHA256 is the client's declaration, which nothing
	// checked against the bytes (S3 multipart: the server never sees
	// them, and S3 checks no whole-object SHA-256 of a multipart upload).
	SHA256Declared bool
	// CRC64NVME is the stored bytes' CRC-64/NVME, in EncodeCRC64NVME's
	// form: computed from the bytes, or verified against them by S3.
	CRC64NVME string
}

// Multipart is implemented by stores that take files in parts (see Caps).
// Every method that takes an ID returns an error matching ErrUploadNotFound
// for an unknown one.
type Multipart interface {
	// CreateUpload records a new upload of u (its ID and Created are set by
	// the store and returned). The caller has already called Check; the
	// store refuses a u that fails Validate, and may lower its SHA256 to
	// lower case first.
	CreateUpload(ctx context.Context, u Upload) (Upload, error)
	// Upload returns the upload with this ID.
	Upload(ctx context.Context, id string) (Upload, error)
	// ListParts returns the parts received so far, by number.
	ListParts(ctx context.Context, id string) ([]Part, error)
	// Complete publishes the upload from parts, which must be exactly
	// 1..PartCount with the ETags ListParts reports. It verifies every
	// part's size, the total size and, when declared, the CRC64NVME and
	// (where the store sees the bytes) the SHA-256 of the whole file, then
	// publishes under the upload's name with the
	// same no-overwrite and all-or-nothing rules as Put, and forgets the
	// upload.
	//
	// A parts list that does not match leaves the upload as it was, so the
	// client can send the missing parts and try again (ErrUploadMismatch).
	// Bytes whose checksums differ from the declaration are discarded with
	// the whole upload (ErrChecksum): nothing is stored. A name taken in
	// the meantime gives ErrExists and also discards the upload.
	Complete(ctx context.Context, id string, parts []Part) (Completed, error)
	// Abort discards the upload and every part it received.
	Abort(ctx context.Context, id string) error
}

// PartURL is where a client sends one part.
type PartURL struct {
	Number  int               `json:"n"`
	Size    int64             `json:"size"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Header  map[string]string `json:"headers,omitempty"` // headers the request must carry
	Expires time.Time         `json:"expires"`
}

// PartPresigner is implemented by multipart stores whose backend takes the
// parts itself, at URLs the store presigns (S3).
type PartPresigner interface {
	PresignPart(ctx context.Context, u Upload, n int, ttl time.Duration) (PartURL, error)
}

// PartWriter is implemented by multipart stores that take parts through
// the handler, which then serves the part URLs itself (the directory
// store). A part sent again replaces the earlier one.
type PartWriter interface {
	// PutPart stores body as part n of the upload. The body's size must be
	// u.PartSizeOf(n) (ErrUploadMismatch otherwise).
	PutPart(ctx context.Context, id string, n int, body Body) (Part, error)
}
