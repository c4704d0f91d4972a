package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// OtherFileError is returned, wrapped, when the server already stores
// other bytes under the name a file is pushed to. Use errors.As to get it.
type OtherFileError struct {
	Name         string
	SHA256       string // the local file's
	StoredSHA256 string
}

func (e *OtherFileError) Error() string {
	return fmt.Sprintf("another file is stored as %s (sha256 %s; this one's is %s)", e.Name, e.StoredSHA256, e.SHA256)
}

// errCannotCompare says that a file is stored under the name and the
// server does not tell its SHA-256, so that it cannot be told apart from
// the local file.
var errCannotCompare = errors.New("the server does not report the stored file's SHA-256, so it cannot be compared with this one")

// checkStoredAs asks the server what is stored under name (HEAD, with
// Want-Repr-Digest for its SHA-256): true when it is this file's bytes,
// false when nothing is. Other bytes are an *OtherFileError.
func (c *Client) checkStoredAs(ctx context.Context, name string, sum string) (bool, error) {
	target := c.route(nil, "files", name)
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		var err error
		resp, err = c.headOnce(ctx, target)
		if err == nil && resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
			err = readError(resp)
			drainClose(resp)
		}
		if err == nil {
			break
		}
		if attempt >= c.opts.Attempts || !retryable(ctx, err) {
			return false, fmt.Errorf("HEAD %s: %w", name, err)
		}
		if err := c.backoff(ctx, attempt, err); err != nil {
			return false, err
		}
	}
	drainClose(resp)
	if resp.StatusCode == http.StatusNotFound {
		return false, nil
	}
	// The SHA-256 alone decides: a HEAD answered through a Lambda front
	// may carry no true Content-Length.
	stored := reprSHA256(resp.Header.Values("Repr-Digest"))
	switch {
	case stored == "":
		return false, errCannotCompare
	case stored != sum:
		return false, &OtherFileError{Name: name, SHA256: sum, StoredSHA256: stored}
	}
	return true, nil
}

func (c *Client) headOnce(ctx context.Context, target string) (*http.Response, error) {
	req, err := c.apiRequest(ctx, http.MethodHead, target, nil, 0, emptySHA256)
	if err != nil {
		return nil, err
	}
	// RFC 9530: a server that keeps no digest may compute it on request.
	req.Header.Set("Want-Repr-Digest", "sha-256=10")
	return c.api.Do(req)
}

// reprSHA256 returns the hex SHA-256 of a Repr-Digest field (RFC 9530,
// "sha-256=:BASE64:"), or "" when it has none.
func reprSHA256(values []string) string {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			alg, val, ok := strings.Cut(strings.TrimSpace(item), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(alg), "sha-256") {
				continue
			}
			val = strings.TrimSpace(val)
			if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
				continue
			}
			if b, err := base64.StdEncoding.DecodeString(val[1 : len(val)-1]); err == nil && len(b) == 32 {
				return hex.EncodeToString(b)
			}
		}
	}
	return ""
}

// settleExists decides a push that the server refused or lost track of
// (cause: 409 exists, or an upload that is gone) by what is stored under
// the name now: the same bytes are success, as a run again of an
// interrupted push expects; other bytes an *OtherFileError; nothing at all,
// cause. known says whether the outcome is known, and with it that an
// upload the push was resuming is of no more use.
func (c *Client) settleExists(ctx context.Context, res *Result, name, sum string, cause error) (known bool, err error) {
	same, err := c.checkStoredAs(ctx, name, sum)
	var other *OtherFileError
	switch {
	case same:
		res.Existing, res.SHA256 = true, sum
		return true, nil
	case errors.As(err, &other):
		return true, fmt.Errorf("%w: %w", cause, err)
	case errors.Is(err, errCannotCompare):
		return true, fmt.Errorf("%w; %w", cause, err)
	case err != nil:
		return false, fmt.Errorf("%w; and checking what is stored failed: %w", cause, err)
	}
	return true, cause
}
