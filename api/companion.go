package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"spillway/apierr"
	"spillway/internal/formdata"
	"spillway/store"
	"spillway/wire"
)

// The /s3/ routes are Companion's S3 multipart routes, the ones
// @uppy/aws-s3 calls on its companionEndpoint, mapped onto the /uploads
// machinery: the same declaration rules, part URLs, completion and
// publish. Uppy's "key" is only ever the name this handler chose: a
// request naming another key is refused as an unknown upload, as S3 does.

// uppyMinPartSize is @uppy/aws-s3's smallest chunk, S3's minimum part.
const uppyMinPartSize = 5 << 20

// uppyPartSize is the chunk size @uppy/aws-s3 cuts a file of size bytes
// into when getChunkSize is not set: the parts this handler expects.
func uppyPartSize(size int64) int64 {
	return max(uppyMinPartSize, (size+store.MaxPartCount-1)/store.MaxPartCount)
}

// metadataSize reads the file's size from Uppy's metadata: a JSON number
// from the create body, a string from the query of /s3/params.
func metadataSize(v any) (int64, error) {
	var s string
	switch v := v.(type) {
	case nil:
		return 0, fmt.Errorf("%w: metadata has no size (set it with uppy.setFileMeta)", apierr.ErrBadRequest)
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		s = v
	default:
		return 0, fmt.Errorf("%w: metadata size is a %T", apierr.ErrBadRequest, v)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: metadata size %q is not a whole number", apierr.ErrBadRequest, s)
	}
	return n, nil
}

func (h *Handler) s3Create(w http.ResponseWriter, r *http.Request, x *exchange) error {
	var req wire.S3CreateRequest
	if err := decodeJSON(r, x, createBodyLimit, &req); err != nil {
		return err
	}
	if err := store.ValidateName(req.Filename); err != nil {
		return err
	}
	size, err := metadataSize(req.Metadata["size"])
	if err != nil {
		return err
	}
	decl := store.Upload{Name: x.name(req.Filename), Size: size, PartSize: uppyPartSize(size)}
	u, err := h.declareUpload(r.Context(), x, viaUppy, decl, wire.CreateUploadRequest{})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.S3CreateResponse{Key: x.shown(u.Name), UploadID: u.ID})
	return nil
}

// s3Upload is the upload of a request's {id} and ?key=: an unknown upload
// unless the key is the upload's name, in the client's space.
func (h *Handler) s3Upload(r *http.Request, x *exchange) (store.Upload, error) {
	u, err := h.upload(r.Context(), r.PathValue("id"))
	if err != nil {
		return store.Upload{}, err
	}
	if key := r.URL.Query().Get("key"); x.name(key) != u.Name {
		return store.Upload{}, fmt.Errorf("%w: upload %s is not of key %q", store.ErrUploadNotFound, u.ID, key)
	}
	return u, nil
}

func (h *Handler) s3SignPart(w http.ResponseWriter, r *http.Request, x *exchange) error {
	u, err := h.s3Upload(r, x)
	if err != nil {
		return err
	}
	s := r.PathValue("n")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("%w: part number %q", errBadQuery, s)
	}
	if u.PartSizeOf(n) < 0 {
		return fmt.Errorf("%w: upload %s has no part %d", store.ErrUploadMismatch, u.ID, n)
	}
	expires := time.Now().Add(h.partTTL).Truncate(time.Second).UTC()
	p, err := h.partURL(r, u, n, expires)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.S3SignedPart{URL: p.URL, Headers: p.Headers, Expires: int64(h.partTTL / time.Second)})
	return nil
}

func (h *Handler) s3ListParts(w http.ResponseWriter, r *http.Request, x *exchange) error {
	u, err := h.s3Upload(r, x)
	if err != nil {
		return err
	}
	parts, err := h.multipart.ListParts(r.Context(), u.ID)
	if err != nil {
		return fmt.Errorf("list parts of upload %s: %w", u.ID, err)
	}
	out := make([]wire.S3Part, len(parts))
	for i, p := range parts {
		out[i] = wire.S3Part{PartNumber: p.Number, Size: p.Size, ETag: p.ETag}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) s3Abort(w http.ResponseWriter, r *http.Request, x *exchange) error {
	u, err := h.s3Upload(r, x)
	if err != nil {
		return err
	}
	if err := h.multipart.Abort(r.Context(), u.ID); err != nil {
		return fmt.Errorf("abort upload %s: %w", u.ID, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) s3Complete(w http.ResponseWriter, r *http.Request, x *exchange) error {
	u, err := h.s3Upload(r, x)
	if err != nil {
		return err
	}
	var req wire.S3CompleteRequest
	if err := decodeJSON(r, x, completeBodyLimit, &req); err != nil {
		return err
	}
	parts := make([]store.Part, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = store.Part{Number: p.PartNumber, ETag: p.ETag}
	}
	c, ct, err := h.complete(r.Context(), x, u.ID, parts)
	if err != nil {
		return err
	}
	h.postFinish(r.Context(), x, viaUppy, c.Name, wire.FileResult{Name: x.shown(c.Name), Size: c.Size, SHA256: c.SHA256, CRC64NVME: c.CRC64NVME}, ct)
	loc := absoluteURL(r, fileURL(x.shown(c.Name)))
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusOK, wire.S3CompleteResponse{Location: loc, Key: x.shown(c.Name), Size: c.Size, SHA256: c.SHA256})
	return nil
}

// s3Params answers GET /s3/params, which @uppy/aws-s3 asks for a file it
// sends whole: a form POST to s3Object, which stores it as POST /files
// would, under the name checked here.
func (h *Handler) s3Params(w http.ResponseWriter, r *http.Request, x *exchange) error {
	q := r.URL.Query()
	shown := q.Get("filename")
	name := x.name(shown)
	if err := store.ValidateName(name); err != nil {
		return err
	}
	size := int64(-1)
	if q.Has("metadata[size]") {
		var err error
		if size, err = metadataSize(q.Get("metadata[size]")); err != nil {
			return err
		}
		if err := h.spool.Check(size); err != nil {
			return err
		}
	}
	// The hook is asked by the form POST these parameters are for.
	if err := h.admit(r.Context(), x, admission{name: name, size: size, quota: size}); err != nil {
		return err
	}
	// The form POST carries no token: the URL says whose space the file
	// goes to, and for whom (the hooks' user), under the signature.
	v := url.Values{"key": {shown}}
	if x.space != "" {
		v.Set("space", x.space)
	}
	if x.user != "" {
		v.Set("user", x.user)
	}
	if h.token != nil || h.auth != nil {
		exp := time.Now().Add(h.partTTL).Unix()
		v.Set("expires", strconv.FormatInt(exp, 10))
		v.Set("sig", hex.EncodeToString(h.formSignature(x.space, x.user, shown, exp)))
	}
	writeJSON(w, http.StatusOK, wire.S3Params{
		Method:  http.MethodPost,
		URL:     absoluteURL(r, "/s3/objects?"+v.Encode()),
		Fields:  map[string]string{"key": shown},
		Headers: map[string]string{},
	})
	return nil
}

// formSignature signs a form URL's space, user, name and expiry with a key
// made from the token, so that a function instance checks the URL a
// sibling signed. Without a token (JWTs only) the key is the upload secret's,
// which the instances must then share. The "POST" keeps it apart from part
// URLs; a space is signed apart from the name, so that a user cannot move
// it into the key (and out of the quota's sight).
func (h *Handler) formSignature(space, user, name string, expires int64) []byte {
	key := h.token
	if key == nil {
		key = h.uploadKey
	}
	k := hmac.New(sha256.New, key)
	io.WriteString(k, "spillway s3 form URL key")
	m := hmac.New(sha256.New, k.Sum(nil))
	fmt.Fprintf(m, "%s\n/s3/objects\n%s\n%d", http.MethodPost, name, expires)
	// Length-prefixed, so that no space and user can pass for another pair.
	fmt.Fprintf(m, "\n%d:%s\n%d:%s", len(space), space, len(user), user)
	return m.Sum(nil)
}

// verifyFormURL checks a form POST's signature, in place of the token
// (@uppy/aws-s3 sends the form with no header of ours), and takes the
// space it signs. Without a token or JWTs there is nothing to check, as on
// every other route.
func (h *Handler) verifyFormURL(r *http.Request, x *exchange) error {
	q := r.URL.Query()
	if h.token == nil && h.auth == nil {
		return nil
	}
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: missing or malformed expires", errBadSignature)
	}
	sig, err := hex.DecodeString(q.Get("sig"))
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("%w: missing or malformed sig", errBadSignature)
	}
	if !hmac.Equal(sig, h.formSignature(q.Get("space"), q.Get("user"), q.Get("key"), exp)) {
		return fmt.Errorf("%w: the signature does not match the URL", errBadSignature)
	}
	if time.Now().Unix() > exp {
		return fmt.Errorf("%w: the URL expired at %s", errBadSignature, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	x.space, x.user = q.Get("space"), q.Get("user")
	return nil
}

// s3Object stores the one file of a form POST under the URL's key; the
// form's other fields are S3's and ignored.
func (h *Handler) s3Object(w http.ResponseWriter, r *http.Request, x *exchange) error {
	ctx := r.Context()
	name := x.name(r.URL.Query().Get("key"))
	if err := store.ValidateName(name); err != nil {
		return err
	}
	mt, params, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if perr != nil || mt != "multipart/form-data" {
		return errUnsupportedMT
	}
	if params["boundary"] == "" {
		return fmt.Errorf("%w: Content-Type has no boundary", errBadMultipart)
	}
	if err := h.admit(ctx, x, admission{via: viaUppy, name: name, size: -1, quota: r.ContentLength}); err != nil {
		return err
	}
	// The file is smaller than the form: as in postMultipart, a form that
	// does not fit is refused before its body.
	if err := h.checkSpace(ctx, r.ContentLength); err != nil {
		return err
	}
	buf, release := h.spool.Buffer() // as in postMultipart
	defer release()
	mr := formdata.NewReaderBuffer(r.Body, params["boundary"], formdata.Limits{MaxParts: h.maxParts}, buf)
	defer mr.Close()
	for {
		part, err := mr.NextPart()
		switch {
		case err == io.EOF:
			return errNoFiles
		case errors.Is(err, formdata.ErrMalformed), errors.Is(err, formdata.ErrHeaderTooLarge):
			return x.body.cause(err)
		case err != nil:
			return x.body.cause(fmt.Errorf("%w: %w", errBadMultipart, err))
		}
		if file, err := partFileName(part.Header); err != nil {
			return err
		} else if file == "" {
			continue // a field of S3's POST policy
		}
		b, err := h.spool.Spool(ctx, part, -1)
		if err != nil {
			return x.body.cause(multipartCause(err))
		}
		defer b.Close()
		x.spool = b.Location().Kind()
		// The file must be the form's last part, as S3 has it.
		if _, err := mr.NextPart(); err != io.EOF {
			return fmt.Errorf("%w: a part after the file", errBadMultipart)
		}
		return h.publishOne(ctx, w, x, viaUppy, name, b)
	}
}

// absoluteURL makes a path of this server absolute, as signedPartURL does.
func absoluteURL(r *http.Request, p string) string {
	if r.Host == "" {
		return p
	}
	return requestScheme(r) + "://" + r.Host + p
}
