// Package wire holds the JSON the upload API speaks: the bodies of its
// requests and responses, its error codes and its spool kinds. The server
// (api), the client (client, cmd/spillway) and the tests share these
// definitions, and the upload page's JavaScript is tested against them,
// so that a field renamed on one side fails to build or fails a test on
// the other. The HTTP contract itself is in README.md ("API") and
// docs/MULTIPART.md.
//
// The package imports only the standard library, and nothing that serves
// or sends HTTP, so that any program, however small, can link it.
package wire

import "time"

// Spool says where a body was held while it arrived: what a 201 reports
// in each file's "spool", and what the log line and the metrics say.
type Spool string

const (
	// SpoolNone is a request that spooled nothing (no body, or refused
	// before it). It never appears in a 201.
	SpoolNone   Spool = ""
	SpoolMemory Spool = "memory" // held in memory, under the threshold
	SpoolDisk   Spool = "disk"   // streamed to a spool file
	SpoolMixed  Spool = "mixed"  // a multipart request with files in both
	SpoolParts  Spool = "parts"  // a completed upload, sent in parts earlier
)

// FileResult is one stored file in a 201.
type FileResult struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// CRC64NVME is the base64 of the bytes' big-endian CRC-64/NVME, as S3
	// shows it in x-amz-checksum-crc64nvme, so that it compares with S3's
	// own value of the object unconverted.
	CRC64NVME string `json:"crc64nvme,omitempty"`
	Spool     Spool  `json:"spool"`
	// Declared names the fields above whose values the client declared
	// and nobody checked against the bytes: "sha256" for a multipart
	// upload to S3, whose bytes the server never sees. Every value not
	// named was computed from the bytes or verified against them.
	Declared []string `json:"declared,omitempty"`
}

// UploadResponse is the body of a 201: PUT /files/{name}, POST /files and
// POST /uploads/{id}/complete.
type UploadResponse struct {
	Files []FileResult `json:"files"`
}

// ListEntry is one file in GET /files.
type ListEntry struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	// Expires, with a retention configured, is Modified plus the
	// retention: the file is kept at least until then. The local server
	// removes it within one sweep after; S3 from the next midnight UTC
	// after, when its lifecycle rule runs. Absent without a retention.
	Expires time.Time `json:"expires,omitzero"`
}

// ListResponse is the body of GET /files: one page of files, sorted by
// name in byte order.
type ListResponse struct {
	Files []ListEntry `json:"files"`
	// NextCursor, passed back as ?cursor=, lists the page after this one.
	// The last page has none.
	NextCursor string `json:"next_cursor,omitempty"`
}

// CreateUploadRequest is the body of POST /uploads.
type CreateUploadRequest struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// CRC64NVME is the whole file's, in FileResult.CRC64NVME's form. On
	// S3 it is the checksum S3 verifies when the upload completes.
	CRC64NVME string `json:"crc64nvme,omitempty"`
	// PartSize, when set, is the part size the client cut the file into
	// to compute PartCRC64NVME; zero lets the server choose.
	PartSize int64 `json:"part_size,omitempty"`
	// PartCRC64NVME, when set, holds each part's CRC64NVME, part n at
	// n-1, so that a part whose bytes do not match is refused when sent.
	PartCRC64NVME []string `json:"part_crc64nvme,omitempty"`
}

// UploadInfo describes an upload in progress.
type UploadInfo struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256,omitempty"`    // omitted when none was declared
	CRC64NVME string `json:"crc64nvme,omitempty"` // omitted when none was declared
	PartSize  int64  `json:"part_size"`
	PartCount int    `json:"part_count"`
}

// PartURL is where a client sends one part.
type PartURL struct {
	Number  int               `json:"n"`
	Size    int64             `json:"size"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"` // headers the request must carry
	Expires time.Time         `json:"expires"`
}

// PartURLPage is one page of part URLs: GET /uploads/{id}/parts.
type PartURLPage struct {
	Parts []PartURL `json:"parts"`
	// NextFrom is the first part number of the next page; 0 when none.
	NextFrom int `json:"next_from"`
}

// CreatedUpload is the body of POST /uploads's 201: the upload and the
// first page of its part URLs.
type CreatedUpload struct {
	UploadInfo
	PartURLPage
}

// Part is a part the server holds.
type Part struct {
	Number int    `json:"n"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"` // quoted and opaque; it changes when the part's bytes do
}

// UploadState is the body of GET /uploads/{id}: what a client needs to
// resume.
type UploadState struct {
	UploadInfo
	Received []Part `json:"received"`
}

// CompleteRequest is the body of POST /uploads/{id}/complete.
type CompleteRequest struct {
	Parts []CompletePart `json:"parts"`
}

// CompletePart names one part to complete with.
type CompletePart struct {
	Number int    `json:"n"`
	ETag   string `json:"etag"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status   string `json:"status"`
	Version  string `json:"version,omitempty"`
	Revision string `json:"revision,omitempty"`
}
