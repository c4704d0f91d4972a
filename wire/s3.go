package wire

// The JSON of the /s3/ routes: Companion's S3 multipart routes, as
// @uppy/aws-s3 calls them on its companionEndpoint (docs/MULTIPART.md,
// "Uppy"). The field names are Companion's, so they break this package's
// snake_case on purpose.

// S3CreateRequest is the body of POST /s3/multipart.
type S3CreateRequest struct {
	Filename string `json:"filename"`
	Type     string `json:"type"`
	// Metadata is the file's Uppy metadata: it must hold "size", the
	// file's size in bytes (a number, or a string of digits), since the
	// plugin sends no size of its own.
	Metadata map[string]any `json:"metadata"`
}

// S3CreateResponse is the answer to POST /s3/multipart.
type S3CreateResponse struct {
	Key      string `json:"key"`
	UploadID string `json:"uploadId"`
}

// S3SignedPart is the answer to GET /s3/multipart/{uploadId}/{partNumber}:
// where to PUT the part.
type S3SignedPart struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	// Expires is the URL's lifetime in seconds.
	Expires int64 `json:"expires"`
}

// S3Part is one received part in GET /s3/multipart/{uploadId}.
type S3Part struct {
	PartNumber int    `json:"PartNumber"`
	Size       int64  `json:"Size"`
	ETag       string `json:"ETag"`
}

// S3CompleteRequest is the body of POST /s3/multipart/{uploadId}/complete.
type S3CompleteRequest struct {
	Parts []S3CompletePart `json:"parts"`
}

// S3CompletePart names one part to complete with.
type S3CompletePart struct {
	PartNumber int    `json:"PartNumber"`
	ETag       string `json:"ETag"`
}

// S3CompleteResponse is the answer to a completion: the stored file. Key
// is its name, Location its URL on this server.
type S3CompleteResponse struct {
	Location string `json:"location"`
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// S3Params is the answer to GET /s3/params: a form POST of one file, as
// S3's POST policy uploads are. Fields go into the form before the file.
type S3Params struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Fields  map[string]string `json:"fields"`
	Headers map[string]string `json:"headers"`
}
