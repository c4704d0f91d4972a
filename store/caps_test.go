package store_test

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"spillway/store"
)

type fakeMultipart struct {
	store.Multipart
	store.PartPresigner
	store.PartWriter
	store.Presigner
	store.SpaceChecker
}

func TestCapsLogValue(t *testing.T) {
	var f fakeMultipart
	for _, tc := range []struct {
		caps store.Caps
		want string
	}{
		{store.Caps{}, "store.multipart_parts=none store.downloads=served store.space_check=false store.tus=false store.reserves_uploads=false"},
		{store.Caps{SpaceChecker: f, Multipart: f, PartWriter: f}, `store.multipart_parts="through the handler" store.downloads=served store.space_check=true store.tus=false store.reserves_uploads=false`},
		{store.Caps{Presigner: f, Multipart: f, PartPresigner: f, PartWriter: f}, "store.multipart_parts=presigned store.downloads=presigned store.space_check=false store.tus=false store.reserves_uploads=false"},
		{store.Caps{SpaceChecker: f, Multipart: f, PartWriter: f, ReservesUploads: true}, `store.multipart_parts="through the handler" store.downloads=served store.space_check=true store.tus=false store.reserves_uploads=true`},
		// Parts that go nowhere are no multipart uploads.
		{store.Caps{Multipart: f}, "store.multipart_parts=none store.downloads=served store.space_check=false store.tus=false store.reserves_uploads=false"},
	} {
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
					return slog.Attr{}
				}
				return a
			},
		})).Info("", "store", tc.caps)
		assert.Equal(t, tc.want+"\n", buf.String())
	}
}
