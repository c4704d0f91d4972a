package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"spillway/store"
	"spillway/wire"
)

// maxListBody bounds the body of one page. A Function URL response is
// capped near 6 MB, and the Lambda adapter may escape the JSON again or
// base64 it, so a page stays well below that: 1000 names of the longest
// kind, made of characters JSON escapes as \u003c, would pass it.
const maxListBody = 1 << 20

// listReserve is kept free of entries in a page's body for its frame and
// the longest cursor.
const listReserve = 2 << 10

// The refusals of a listing's query. Their messages are fixed: what the
// client sent is not echoed back.
var (
	errListLimit  = fmt.Errorf("%w: limit must be an integer from 1 to %d", errBadQuery, store.MaxListLimit)
	errListCursor = fmt.Errorf("%w: cursor must be a next_cursor from an earlier page", errBadQuery)
	errListPrefix = fmt.Errorf("%w: prefix must be a folder such as a/b/ or the start of a name", errBadQuery)
	errListQuery  = fmt.Errorf("%w: the query string is malformed", errBadQuery)
)

// list answers GET /files?limit=N&cursor=C&prefix=P with one page.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, x *exchange) error {
	opts, err := listOptions(r.URL.RawQuery)
	if err != nil {
		return err
	}
	// A user lists their own space, in their own names: the cursor is a
	// shown name too.
	opts.Prefix = x.name(opts.Prefix)
	if opts.After != "" {
		opts.After = x.name(opts.After)
	}
	if h.listSlots != nil {
		select {
		case h.listSlots <- struct{}{}:
			defer func() { <-h.listSlots }()
		default:
			return fmt.Errorf("%w: %d listings already in progress", errBusy, cap(h.listSlots))
		}
	}
	infos, more, err := h.store.List(r.Context(), opts)
	if errors.Is(err, store.ErrInvalidName) {
		// listOptions checked the prefix; a store may be stricter.
		return errListPrefix
	}
	if err != nil {
		return err
	}
	resp := wire.ListResponse{Files: make([]wire.ListEntry, 0, len(infos))}
	size := len(`{"files":[]}`) + listReserve
	for i, info := range infos {
		e := wire.ListEntry{Name: x.shown(info.Name), Size: info.Size, Modified: info.Modified.UTC()}
		if h.retention > 0 {
			e.Expires = e.Modified.Add(h.retention)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("list: encode %q: %w", info.Name, err)
		}
		size += len(b) + 1
		if size > maxListBody && i > 0 {
			more = true
			break
		}
		resp.Files = append(resp.Files, e)
	}
	if more && len(resp.Files) > 0 {
		resp.NextCursor = encodeCursor(resp.Files[len(resp.Files)-1].Name)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// listOptions parses a listing's query. A cursor or prefix given empty is
// none; a limit given empty is refused.
func listOptions(rawQuery string) (store.ListOptions, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return store.ListOptions{}, errListQuery
	}
	opts := store.ListOptions{Limit: store.MaxListLimit, Prefix: q.Get("prefix")}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > store.MaxListLimit {
			return opts, errListLimit
		}
		opts.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		if opts.After, err = decodeCursor(c); err != nil {
			return opts, errListCursor
		}
	}
	if store.ValidatePrefix(opts.Prefix) != nil {
		return opts, errListPrefix
	}
	return opts, nil
}

// A cursor is the last name of a page, base64url-encoded without padding:
// opaque to clients, safe in a query string, and positional, so a page
// begins after that name whatever was added or removed meanwhile.
func encodeCursor(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(name))
}

// decodeCursor accepts only the cursors encodeCursor makes: canonical
// base64url of a valid name.
func decodeCursor(c string) (string, error) {
	if len(c) > base64.RawURLEncoding.EncodedLen(store.MaxNameLen) {
		return "", errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil {
		return "", err
	}
	name := string(b)
	if err := store.ValidateName(name); err != nil {
		return "", err
	}
	return name, nil
}
