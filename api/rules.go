package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"spillway/apierr"
	"spillway/internal/hook"
	"spillway/internal/sniff"
	"spillway/store"
	"spillway/wire"
)

// Hooks is what the handler asks before an upload and tells after it
// (*hook.Client is one; the mains build it).
type Hooks interface {
	// PreCreate returns nil to let the upload go ahead, a *hook.Refusal to
	// refuse it, or hook.ErrUnavailable when the hook could not be asked.
	PreCreate(ctx context.Context, ev hook.Event) error
	// PostFinish reports a file published; it returns within its own
	// bound, whatever ctx.
	PostFinish(ctx context.Context, ev hook.Event) error
}

// The routes an event names.
const (
	viaPut       = "put"
	viaForm      = "form"
	viaMultipart = "multipart"
	viaTus       = "tus"
	viaUppy      = "uppy"
)

var (
	errHookRefused     = apierr.New(wire.CodeHookRefused, "the pre-create hook refused the upload")
	errHookUnavailable = apierr.New(wire.CodeHookUnavailable, "the pre-create hook did not answer")
	errTypeNotAllowed  = apierr.New(wire.CodeTypeNotAllowed, "the body's type is not allowed")
)

// preCreate asks the hook, if there is one, whether name may be uploaded:
// after the handler's own checks, before any byte is stored. A refusal is
// 403 with the hook's message where it gave one; a hook that cannot be
// asked is 503, since letting the upload through would bypass whatever the
// hook enforces.
func (h *Handler) preCreate(ctx context.Context, x *exchange, via, name string, size int64) error {
	if h.hooks == nil {
		return nil
	}
	err := h.hooks.PreCreate(ctx, hook.Event{RequestID: x.id, Route: via, Name: name, Size: size, User: x.user})
	if ref, ok := errors.AsType[*hook.Refusal](err); ok {
		e := apierr.Of(wire.CodeHookRefused)
		if ref.Message != "" {
			e.Message = ref.Message
		}
		return fmt.Errorf("%w: %w: %w", e, errHookRefused, err)
	}
	if errors.Is(err, hook.ErrUnavailable) {
		return fmt.Errorf("%w: %w", errHookUnavailable, err)
	}
	return err
}

// postFinish tells the hook, if there is one, that a file is published,
// before the answer: so the answer waits at most the hook client's budget.
// A delivery that fails is logged; the file stays and the answer is the
// upload's, since the bytes are safe whatever the hook heard.
func (h *Handler) postFinish(ctx context.Context, x *exchange, via, name string, res wire.FileResult, contentType string) {
	if h.hooks == nil {
		return
	}
	ev := hook.Event{RequestID: x.id, Route: via, Name: name, Size: res.Size, User: x.user,
		SHA256: res.SHA256, CRC64NVME: res.CRC64NVME, ContentType: contentType}
	start := time.Now()
	if err := h.hooks.PostFinish(ctx, ev); err != nil {
		h.log.Warn("post-finish hook failed; the file stays stored", "request_id", x.id, "name", name,
			"duration", time.Since(start), "error", err)
	}
}

// checkType sniffs the type of the bytes r begins with and refuses it
// when the allow list does not name it. Without a list it sniffs nothing
// and returns "".
func (h *Handler) checkType(r io.ReaderAt) (string, error) {
	if h.allow.Any() {
		return "", nil
	}
	t, err := sniff.Detect(r)
	if err != nil {
		return "", err
	}
	if !h.allow.Allow(t) {
		return "", fmt.Errorf("%w: %s", errTypeNotAllowed, t)
	}
	return t, nil
}

// checkStored applies the allow list to a file already published, whose
// bytes the handler never saw (parts sent to S3): a refused file is
// deleted before the answer.
func (h *Handler) checkStored(ctx context.Context, name string) (string, error) {
	if h.allow.Any() {
		return "", nil
	}
	_, rc, err := h.store.Open(ctx, name)
	if err != nil {
		return "", fmt.Errorf("check the type of %q: %w", name, err)
	}
	head := make([]byte, sniff.Len)
	n, err := io.ReadFull(rc, head)
	rc.Close()
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return "", fmt.Errorf("check the type of %q: %w", name, err)
	}
	t := http.DetectContentType(head[:n])
	if h.allow.Allow(t) {
		return t, nil
	}
	if derr := h.store.Delete(context.WithoutCancel(ctx), name); derr != nil {
		return "", fmt.Errorf("delete %q, of a type not allowed (%s): %w", name, t, derr)
	}
	return "", fmt.Errorf("%w: %s, deleted once complete", errTypeNotAllowed, t)
}

// sniffedBody reads the first bytes of a tus upload's first chunk and
// checks their type before any of them reaches the store, then gives the
// whole chunk back.
func (h *Handler) sniffedBody(body io.Reader) (io.Reader, error) {
	if h.allow.Any() {
		return body, nil
	}
	head := make([]byte, sniff.Len)
	n, err := io.ReadFull(body, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	if _, err := h.checkType(bytes.NewReader(head[:n])); err != nil {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(head[:n]), body), nil
}

// storedType is the type downloads send for a file under an allow list:
// the one the store kept, else (the directory store) the one its first
// bytes give, sniffed again as at upload.
func (h *Handler) storedType(ctx context.Context, name string, info store.Info, content io.ReadSeeker) (string, error) {
	if info.ContentType != "" {
		return info.ContentType, nil
	}
	if content == nil {
		_, rc, err := h.store.Open(ctx, name)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		content = rc
	}
	head := make([]byte, sniff.Len)
	n, err := io.ReadFull(content, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return "", fmt.Errorf("sniff %q: %w", name, err)
	}
	if _, err := content.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("sniff %q: %w", name, err)
	}
	return http.DetectContentType(head[:n]), nil
}

// typedDownloadHeaders is downloadHeaders for a file of a known type t:
// sent as t, inline only when t is one of inlineTypes' types (an image
// sniffed as such, say), else as an attachment.
func typedDownloadHeaders(name, t string) store.DownloadHeaders {
	mt, _, _ := strings.Cut(t, ";")
	mt = strings.TrimSpace(mt)
	for _, it := range inlineTypes {
		if m, _, _ := strings.Cut(it, ";"); m == mt {
			return store.DownloadHeaders{ContentType: t}
		}
	}
	return store.DownloadHeaders{ContentType: t, ContentDisposition: attachment(path.Base(name))}
}
