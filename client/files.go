package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"spillway/wire"
)

// FileInfo is one stored file, as GET /files lists it.
type FileInfo = wire.ListEntry

// maxListPages bounds how many pages one listing follows, so that a server
// whose cursors never end cannot keep a client listing forever: ten
// million files at the server's largest page.
const maxListPages = 10_000

// List returns the stored files whose names begin with prefix ("" for
// all), in the server's order (by name, in byte order), following the
// listing's pages. pageSize is how many files are asked for at once; 0
// leaves it to the server (its largest page). A failed page ends the
// sequence with its error; a page is tried again as any GET is.
func (c *Client) List(ctx context.Context, prefix string, pageSize int) iter.Seq2[FileInfo, error] {
	return func(yield func(FileInfo, error) bool) {
		var cursor string
		for page := 0; ; page++ {
			if page == maxListPages {
				yield(FileInfo{}, fmt.Errorf("list: more than %d pages", maxListPages))
				return
			}
			q := url.Values{}
			if prefix != "" {
				q.Set("prefix", prefix)
			}
			if pageSize > 0 {
				q.Set("limit", strconv.Itoa(pageSize))
			}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			var resp wire.ListResponse
			if err := c.doJSON(ctx, http.MethodGet, c.route(q, "files"), nil, http.StatusOK, &resp); err != nil {
				yield(FileInfo{}, fmt.Errorf("list: %w", err))
				return
			}
			for _, f := range resp.Files {
				if !yield(f, nil) {
					return
				}
			}
			if resp.NextCursor == "" {
				return
			}
			if resp.NextCursor == cursor || len(resp.Files) == 0 {
				// A cursor that does not move would list the same page
				// again and again.
				yield(FileInfo{}, errors.New("list: the server's next_cursor does not advance"))
				return
			}
			cursor = resp.NextCursor
		}
	}
}

// Delete removes the stored file name: DELETE /files/{name}, 204. A file
// that is not there is an *Error with status 404 and code "not_found". A
// lost answer is tried again, and a retry that finds the file gone then
// reports not_found: the caller cannot tell it from a file that never was.
func (c *Client) Delete(ctx context.Context, name string) error {
	if err := c.doJSON(ctx, http.MethodDelete, c.route(nil, "files", name), nil, http.StatusNoContent, nil); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
