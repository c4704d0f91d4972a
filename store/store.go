// Package store defines where spooled uploads end up: the Store interface
// that the local directory and S3 backends implement, the errors they share,
// and the rules every stored name follows.
package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"
)

var (
	// ErrInvalidName: the name breaks the naming rules, or resolves outside
	// the store (a planted symlink, say).
	ErrInvalidName = errors.New("store: invalid name")
	// ErrExists: the name is taken and overwriting is off, or it collides
	// with a directory or with a file used as a directory.
	ErrExists = errors.New("store: name already exists")
	// ErrNotFound: nothing is stored under the name.
	ErrNotFound = errors.New("store: not found")
	// ErrInsufficientStorage: the store cannot hold the bytes.
	ErrInsufficientStorage = errors.New("store: insufficient storage")
	// ErrTooManyUploads: the store holds as many open uploads (multipart
	// or tus) as it allows; one must end before another begins.
	ErrTooManyUploads = errors.New("store: too many open uploads")
	// ErrBackend: the backend failed or refused the store's credentials.
	ErrBackend = errors.New("store: backend error")
	// ErrThrottled: the backend asks to slow down; the client may retry.
	ErrThrottled = errors.New("store: backend is throttling")
	// ErrChecksum: the backend received bytes that do not match their
	// checksum.
	ErrChecksum = errors.New("store: checksum mismatch")
)

// File is one upload to publish: a validated name and its body.
type File struct {
	Name string
	Body Body
	// ContentType, when set, is the type the store keeps with the file
	// where it keeps one (S3's Content-Type); empty leaves it the
	// store's own choice.
	ContentType string
}

// Body is the content of an upload, received whole before it is published:
// its size and SHA-256 are known, and it can be read again as often as
// needed. A *spool.Body is one, and a FileBody.
type Body interface {
	// Size returns the body's length in bytes.
	Size() int64
	// SHA256 returns the digest of the body's bytes.
	SHA256() [sha256.Size]byte
	// CRC64NVME returns the CRC-64/NVME of the body's bytes, the checksum
	// S3 keeps for every object (EncodeCRC64NVME gives S3's form).
	CRC64NVME() uint64
	// Reader returns a new reader over the whole body, independent of any
	// other, which can Seek and ReadAt.
	Reader() *io.SectionReader
}

// FileBody is a Body that may be held in a file, which a store on the same
// filesystem can link under the name it publishes rather than write the
// bytes again. Stores find it with a type assertion on the Body.
type FileBody interface {
	Body
	// File returns the open file holding the body's bytes, or nil when it
	// has none (a body held in memory). The file stays the body's, and a
	// store links it by its descriptor, never by a name that may lead to
	// another file by now.
	File() *os.File
	// DropName removes the name the file was made under, if it still
	// leads to the file, once the store has linked it and before the store
	// makes it readable to others: a mode is the inode's, so that name
	// would expose the bytes too.
	DropName() error
}

// Info describes a stored file.
type Info struct {
	Name     string
	Size     int64
	Modified time.Time
	ETag     string // quoted, ready for an ETag header
	// SHA256 is the content's lower-case hex SHA-256 when the store kept
	// it with the content (S3 object metadata); empty when it did not, as
	// the directory store does not, since a copy kept beside a file could
	// go stale.
	SHA256 string
	// ContentType is the type the store keeps with the content (S3's
	// Content-Type); empty when it keeps none, as the directory store.
	ContentType string
}

// Store publishes spooled bodies and serves them back.
type Store interface {
	// Check reports, before any body is read, whether name could be stored
	// with size bytes (-1 when unknown): ErrInvalidName, ErrExists when the
	// store does not overwrite, ErrInsufficientStorage. A nil result is not
	// a promise; Put checks again.
	Check(ctx context.Context, name string, size int64) error
	// Put publishes all files or none. Each appears complete or not at all,
	// and once Put returns nil the bytes are durable as the store defines.
	Put(ctx context.Context, files []File) error
	// List returns one page of the stored files that opts selects, sorted
	// by name in byte order, and whether more follow it. A bad
	// opts.Prefix is ErrInvalidName.
	List(ctx context.Context, opts ListOptions) (files []Info, more bool, err error)
	// Open returns a stored file's metadata and content.
	Open(ctx context.Context, name string) (Info, io.ReadSeekCloser, error)
	// Stat returns a stored file's metadata, the Info Open would, without
	// opening it: ErrNotFound for a name that is not a file.
	Stat(ctx context.Context, name string) (Info, error)
	// Delete removes a stored file: ErrNotFound for a name that is not a
	// file (a folder too), ErrInvalidName for a name that breaks the rules.
	// A download already reading the file may read it to its end. Once
	// Delete returns nil the name can be stored again.
	Delete(ctx context.Context, name string) error
	// Capabilities returns the optional features the store has.
	Capabilities() Caps
}

// Caps are a store's optional features: each field is the interface that
// provides one, or nil when the store lacks it (or, for a property, a flag). Callers ask for them
// rather than probing the store by type assertion, which a wrapper would
// defeat without a word: a wrapper that embeds a Store passes its Caps on
// as they are, pointing past the wrapper, and one that wraps a feature
// too, or hides it, returns Caps of its own.
type Caps struct {
	// SpaceChecker refuses, before the body, a request whose files cannot
	// fit, when their sizes are not known one by one (multipart forms).
	SpaceChecker SpaceChecker
	// Presigner sends downloads straight to the backend.
	Presigner Presigner
	// Multipart takes files in parts. It is used only with one of
	// PartPresigner (the backend takes the parts, S3) and PartWriter (the
	// handler does, the directory store); PartPresigner wins when both are
	// set.
	Multipart     Multipart
	PartPresigner PartPresigner
	PartWriter    PartWriter
	// Resumable takes tus uploads: bytes appended in order at an offset
	// the store keeps between requests.
	Resumable ResumableStore
	// ReservesUploads says that an upload in parts holds its declared
	// size in the store from its creation: a part goes into space already
	// reserved, so it needs none of the SpaceChecker's.
	ReservesUploads bool
}

// LogValue says what the store can do, for the start-up log line.
func (c Caps) LogValue() slog.Value {
	parts := "none"
	switch {
	case c.Multipart == nil:
	case c.PartPresigner != nil:
		parts = "presigned"
	case c.PartWriter != nil:
		parts = "through the handler"
	}
	downloads := "served"
	if c.Presigner != nil {
		downloads = "presigned"
	}
	return slog.GroupValue(
		slog.String("multipart_parts", parts),
		slog.String("downloads", downloads),
		slog.Bool("space_check", c.SpaceChecker != nil),
		slog.Bool("tus", c.Resumable != nil),
		slog.Bool("reserves_uploads", c.ReservesUploads),
	)
}

// SpaceChecker is implemented by stores with finite space, so that a
// request whose files' sizes are not known one by one (multipart) can still
// be refused before its body is read when its total cannot fit. See Caps.
type SpaceChecker interface {
	CheckSpace(ctx context.Context, size int64) error
}

// Presigner is implemented by stores whose files are better downloaded
// straight from the backend, with a URL that expires. See Caps.
type Presigner interface {
	// PresignGet returns a GET URL for an existing file whose response
	// carries hdr in place of whatever the backend has stored.
	PresignGet(ctx context.Context, name string, hdr DownloadHeaders) (string, error)
}

// DownloadHeaders are the headers a file is downloaded with.
type DownloadHeaders struct {
	ContentType string
	// ContentDisposition is empty when the file may be shown inline.
	ContentDisposition string
}

// MaxListLimit is the most files one List call returns.
const MaxListLimit = 1000

// ListOptions select one page of a listing.
type ListOptions struct {
	// Prefix keeps the names that begin with it, byte for byte: "2026/"
	// selects everything in the folder 2026, "2026/rep" the names in it
	// that begin with "rep". It must pass ValidatePrefix; empty selects
	// every name.
	Prefix string
	// After keeps the names that sort after it, whether or not it is
	// stored, so that the next page begins where the last one ended even
	// when files come and go between the two. Empty: from the first name.
	After string
	// Limit is the most files to return, from 1 to MaxListLimit; any other
	// value means MaxListLimit.
	Limit int
}

// PageLimit returns Limit, or MaxListLimit when Limit is out of range.
func (o ListOptions) PageLimit() int {
	if o.Limit < 1 || o.Limit > MaxListLimit {
		return MaxListLimit
	}
	return o.Limit
}
