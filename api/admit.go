package api

import "context"

// admission is a new file as the checks before its body see it.
type admission struct {
	// via is the route, as the pre-create hook hears it; "" asks no hook,
	// for a request that only prepares the one that brings the body, which
	// asks it (Uppy's form parameters).
	via  string
	name string
	// size is the file's declared size, -1 when unknown.
	size int64
	// quota is what the user's quota is asked to take: size, or the whole
	// body of a form. quotaAsked skips it: the request asked it once for
	// all of its files.
	quota      int64
	quotaAsked bool
	// declared, if set, checks the rest of the declaration, between the
	// quota and the hook (a multipart upload's digests).
	declared func() error
}

// admit runs the checks that can refuse a new file before a byte of it is
// read or anything is allocated, in their one order: the store's (a name
// free, room for the size), the quota's, the declaration's own, then the
// pre-create hook's, which is asked last so that it hears only of uploads
// the server itself would take.
func (h *Handler) admit(ctx context.Context, x *exchange, a admission) error {
	if err := h.store.Check(ctx, a.name, a.size); err != nil {
		return err
	}
	if !a.quotaAsked {
		if err := h.checkQuota(ctx, x, a.quota); err != nil {
			return err
		}
	}
	if a.declared != nil {
		if err := a.declared(); err != nil {
			return err
		}
	}
	if a.via == "" {
		return nil
	}
	return h.preCreate(ctx, x, a.via, a.name, a.size)
}
