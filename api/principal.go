package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"spillway/apierr"
	"spillway/internal/jwtauth"
	"spillway/store"
	"spillway/wire"
)

// Per-user auth: a request carries the shared token, which acts on the
// whole store, or a JWT that Config.Authenticator verifies, which acts for
// its user and, with a space claim, only inside the user's folder. Every
// name the user sends is joined to the folder (exchange.name) and every
// name answered has it cut off again (exchange.shown), so that a user sees
// a store of their own; an upload ID is the user's only when its name is
// in the folder (exchange.owns), and any other is answered as unknown.

// Authenticator verifies a bearer token that is not the shared token.
// jwtauth.Verifier is one.
type Authenticator interface {
	Verify(ctx context.Context, token string) (jwtauth.Principal, error)
}

var (
	errQuota = apierr.New(wire.CodeQuotaExceeded, "the upload would take the user over the quota")
	// errInvalidSpace is a valid token whose space claim cannot be a
	// folder: refused rather than stored at the top.
	errInvalidSpace = apierr.New(wire.CodeInvalidSpace, "the token's space claim is not a valid folder name")
)

// bearer returns the request's bearer token, "" when it has none.
func bearer(r *http.Request) string {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(got)
}

// authenticate applies the token rule and sets the request's principal on
// x. The shared token, when the bearer is it, wins: it is the operator's
// key and acts on the whole store. Anything else goes to the
// authenticator, when there is one.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, x *exchange) error {
	if h.token == nil && h.auth == nil {
		return nil
	}
	tok := bearer(r)
	if h.token != nil && subtle.ConstantTimeCompare([]byte(tok), h.token) == 1 {
		return nil
	}
	if h.auth == nil || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="spillway"`)
		return apierr.ErrUnauthorized
	}
	p, err := h.auth.Verify(r.Context(), tok)
	switch {
	case errors.Is(err, jwtauth.ErrInvalidSpace):
		return fmt.Errorf("%w: %w", errInvalidSpace, err)
	case err != nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="spillway", error="invalid_token"`)
		return fmt.Errorf("%w: %w", apierr.ErrUnauthorized, err)
	}
	x.user, x.space = p.User, p.Space
	return nil
}

// name is the stored name of a name the client sent: inside its space.
func (x *exchange) name(n string) string { return x.space + n }

// shown is the name the client sees of a stored name.
func (x *exchange) shown(n string) string { return strings.TrimPrefix(n, x.space) }

// owns reports whether a stored name is in the client's space.
func (x *exchange) owns(n string) bool { return strings.HasPrefix(n, x.space) }

// ownUpload is the multipart upload id, when it is the client's: another
// user's upload is as unknown as one never created.
func (h *Handler) ownUpload(ctx context.Context, x *exchange, id string) (store.Upload, error) {
	u, err := h.upload(ctx, id)
	if err != nil {
		return store.Upload{}, err
	}
	if !x.owns(u.Name) {
		return store.Upload{}, fmt.Errorf("%w: upload %s is not in space %q", store.ErrUploadNotFound, id, x.space)
	}
	return u, nil
}

// checkOwnUpload refuses an upload ID that is not the client's, for the
// routes that do not otherwise read the upload first. It costs a store
// call only for a client with a space.
func (h *Handler) checkOwnUpload(ctx context.Context, x *exchange, id string) error {
	if x.space == "" {
		return nil
	}
	_, err := h.ownUpload(ctx, x, id)
	return err
}

// checkOwnResumable is checkOwnUpload for a tus upload.
func (h *Handler) checkOwnResumable(x *exchange, u store.Resumable) error {
	if !x.owns(u.Name) {
		return fmt.Errorf("%w: tus upload %s is not in space %q", store.ErrUploadNotFound, u.ID, x.space)
	}
	return nil
}

// checkQuota refuses, before its body is read, an upload of size bytes
// (-1: unknown) that would take the client's space over the quota. The
// stored bytes are counted by listing the space: a quota is for spaces of
// modest file counts. Uploads in progress are not counted, so uploads
// running at once can together pass the quota by what they carry.
func (h *Handler) checkQuota(ctx context.Context, x *exchange, size int64) error {
	if h.quota <= 0 || x.space == "" {
		return nil
	}
	used, err := h.spaceUsed(ctx, x.space)
	if err != nil {
		return err
	}
	if size < 0 {
		// Unknown: only a space already full is refused.
		size = 0
		if used < h.quota {
			return nil
		}
	}
	if used+size > h.quota {
		return fmt.Errorf("%w: user %q stores %d bytes of %d, and sends %d", errQuota, x.user, used, h.quota, size)
	}
	return nil
}

// spaceUsed sums the sizes of the files in space.
func (h *Handler) spaceUsed(ctx context.Context, space string) (int64, error) {
	var used int64
	opts := store.ListOptions{Prefix: space, Limit: store.MaxListLimit}
	for {
		infos, more, err := h.store.List(ctx, opts)
		if err != nil {
			return 0, fmt.Errorf("quota: list %q: %w", space, err)
		}
		for _, info := range infos {
			used += info.Size
		}
		if !more || len(infos) == 0 {
			return used, nil
		}
		opts.After = infos[len(infos)-1].Name
	}
}
