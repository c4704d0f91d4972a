package store

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/minio/crc64nvme"
)

// Resumable uploads are the tus protocol's (docs/TUS.md): the bytes of one
// file arrive in order, in as many requests as the client likes, each
// appended at the offset the store keeps, and the file is published when
// the last byte arrives. The store keeps the upload's state between
// requests (its offset and the running hashes of the bytes so far), so a
// restarted server, or another function invocation, carries on from it.

var (
	// ErrOffsetMismatch: a chunk was sent for an offset other than the
	// upload's (tus answers 409).
	ErrOffsetMismatch = errors.New("store: chunk offset is not the upload's offset")
	// ErrLocked: another request is appending to the upload (tus servers
	// answer 423).
	ErrLocked = errors.New("store: upload is busy with another request")
	// ErrChunkChecksum: a chunk's bytes do not match the checksum sent
	// with them; they were not appended (tus answers 460).
	ErrChunkChecksum = errors.New("store: chunk checksum mismatch")
)

// UnknownSize is a Resumable's Size while the client has not declared it
// (tus's creation-defer-length).
const UnknownSize = -1

// Resumable is one resumable upload's state.
type Resumable struct {
	ID       string // NewUploadID's, set by the store
	Name     string // a name ValidateName accepted
	Size     int64  // UnknownSize until declared
	Offset   int64  // the bytes received so far
	Metadata string // the client's Upload-Metadata as sent, returned on HEAD
	Created  time.Time
	// Expires is when the store may remove the upload if no byte arrives
	// before then; it moves on with every chunk.
	Expires time.Time
	// Done is the file a finished upload became, nil before. The store
	// keeps a finished upload's record until Expires, so that a client
	// resuming a URL it stored (tus-js-client does by default) learns
	// that the upload is complete instead of starting it again.
	Done *Finished
}

// Chunk is the bytes one request appends.
type Chunk struct {
	// Offset is where the client says the bytes go; anything but the
	// upload's Offset is ErrOffsetMismatch.
	Offset int64
	// Size declares a deferred size with this chunk; UnknownSize leaves it
	// as it is.
	Size int64
	// Body is read to its end, or until it holds more than the upload has
	// room for (ErrTooLarge is then not appended, and the store returns
	// an error matching ErrUploadMismatch).
	Body io.Reader
	// MaxSize bounds a deferred upload while its size is unknown.
	MaxSize int64
	// Verify, when set, runs once Body has been read to its end: an error
	// (ErrChunkChecksum) discards the chunk's bytes.
	Verify func() error
	// KeepPartial keeps the bytes of a Body that failed before its end
	// (a client gone mid-request), as tus asks, so the client resumes
	// after them. It must be false when Verify is set: bytes that cannot
	// be verified are not kept.
	KeepPartial bool
	// Admit, when set, is given the upload's state as the store reads it
	// for this chunk, before any of Body is read: an error refuses the
	// chunk and is returned as it is. The caller checks the request
	// against the state the chunk goes to, and reads it no other time.
	Admit func(Resumable) error
}

// Finished is the file a resumable upload became.
type Finished struct {
	Info
	SHA256 string // lower-case hex digest of the stored bytes
	// CRC64NVME is the stored bytes' CRC-64/NVME, base64 of its 8
	// big-endian bytes, as S3 reports it.
	CRC64NVME string
}

// Appended is what an Append did: the upload's state after it, and the
// file, when the chunk was the last one.
type Appended struct {
	Upload Resumable
	// Done is the published file once the upload's last byte arrived,
	// nil before.
	Done *Finished
}

// ResumableStore is implemented by stores that take tus uploads (see
// Caps). Every method that takes an ID returns an error matching
// ErrUploadNotFound for an unknown one, including an upload that was
// terminated or expired. A finished upload is known until it expires:
// Resumable reports it with Done set, and an empty Append at its end
// answers the same without storing anything again.
type ResumableStore interface {
	// CreateResumable records a new upload of r's Name, Size and
	// Metadata (its ID, Created and Expires are set by the store and
	// returned). The caller has already called Check.
	CreateResumable(ctx context.Context, r Resumable) (Resumable, error)
	// Resumable returns the upload's state as the last Append left it.
	Resumable(ctx context.Context, id string) (Resumable, error)
	// Append appends c's bytes at the upload's offset. Two Appends to one
	// upload never both advance it: the second one fails with ErrLocked
	// (or, having waited, ErrOffsetMismatch). When the upload's last byte
	// arrives, Append publishes the file with the same no-overwrite and
	// all-or-nothing rules as Put (ErrExists discards the upload) and
	// keeps only its record; when publishing fails otherwise, the upload
	// stays as it was before the chunk, which can then be sent again.
	Append(ctx context.Context, id string, c Chunk) (Appended, error)
	// Terminate discards the upload and the bytes it received.
	Terminate(ctx context.Context, id string) error
}

// NewCRC64NVME returns a CRC-64/NVME hash, the checksum S3 keeps for
// every object. Its state can be saved and restored with
// encoding.BinaryMarshaler, as resumable uploads do between requests.
func NewCRC64NVME() hash.Hash64 { return crc64nvme.New() }

// AppendFinished is Append on a finished upload r, for the stores: an
// empty chunk at its end, which a client sends when it lost the last
// answer, gets the same result again; anything else is refused as being
// at the wrong offset, or too large.
func AppendFinished(r Resumable, c Chunk) (Appended, error) {
	if c.Offset != r.Offset {
		return Appended{}, fmt.Errorf("%w: tus upload %s is finished at %d, the chunk is for %d", ErrOffsetMismatch, r.ID, r.Offset, c.Offset)
	}
	if c.Body != nil {
		n, err := io.CopyN(io.Discard, c.Body, 1)
		switch {
		case n > 0:
			return Appended{}, fmt.Errorf("%w: tus upload %s is finished", ErrUploadTooLarge, r.ID)
		case err != nil && err != io.EOF:
			return Appended{}, fmt.Errorf("tus upload %s: %w", r.ID, err)
		}
	}
	return Appended{Upload: r, Done: r.Done}, nil
}
