package wire

// Code is an error's stable, machine-readable name. Each code has one HTTP
// status and one fixed message: package apierr holds them.
type Code string

// The codes, in the order of README.md's error table.
const (
	CodeUnauthorized         Code = "unauthorized"
	CodeInvalidSpace         Code = "invalid_space"
	CodeBadSignature         Code = "bad_signature"
	CodeInvalidName          Code = "invalid_name"
	CodeBadMultipart         Code = "bad_multipart"
	CodeNoFiles              Code = "no_files"
	CodeIncompleteBody       Code = "incomplete_body"
	CodeBadQuery             Code = "bad_query"
	CodeBadRequest           Code = "bad_request"
	CodeNotFound             Code = "not_found"
	CodeUploadNotFound       Code = "upload_not_found"
	CodeUploadMismatch       Code = "upload_mismatch"
	CodeMultipartUnsupported Code = "multipart_unsupported"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeTimeout              Code = "timeout"
	CodeExists               Code = "exists"
	CodeTooLarge             Code = "too_large"
	CodeQuotaExceeded        Code = "quota_exceeded"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeBusy                 Code = "busy"
	CodeUnavailable          Code = "unavailable"
	CodeStorageError         Code = "storage_error"
	CodeThrottled            Code = "throttled"
	CodeBadChecksum          Code = "bad_checksum"
	CodeTusVersion           Code = "tus_version"
	CodeTusUploadNotFound    Code = "tus_upload_not_found"
	CodeTusMediaType         Code = "tus_media_type"
	CodeOffsetMismatch       Code = "offset_mismatch"
	CodeLocked               Code = "locked"
	CodeChecksumAlgorithm    Code = "checksum_algorithm"
	CodeChecksumMismatch     Code = "checksum_mismatch"
	CodeInsufficientStorage  Code = "insufficient_storage"
	CodeTooManyUploads       Code = "too_many_uploads"
	CodeBadEvent             Code = "bad_event"
	CodeResponseTooLarge     Code = "response_too_large"
	CodeHookRefused          Code = "hook_refused"
	CodeHookUnavailable      Code = "hook_unavailable"
	CodeTypeNotAllowed       Code = "type_not_allowed"
	CodeInternal             Code = "internal"
	// CodeClientGone is logged only: no client is left to read it.
	CodeClientGone Code = "client_gone"
)

// ErrorResponse is the body of every error the API answers:
// {"error":{"code":"…","message":"…","request_id":"…"}}.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Error is what went wrong, as the client is told: the code, its fixed
// message, and the request ID under which the server logged the detail.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Limit is the largest size in bytes the server accepts, on too_large
	// when a limit is configured: the one figure a client needs to act on
	// the refusal, kept out of the fixed message.
	Limit     int64  `json:"limit,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}
