package store_test

import (
	"encoding"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store"
)

func TestCRC64NVMECheckValue(t *testing.T) {
	h := store.NewCRC64NVME()
	h.Write([]byte("123456789"))
	assert.Equal(t, uint64(0xAE8B14860A799888), h.Sum64())
}

func TestCRC64NVMEStateSurvivesMarshalling(t *testing.T) {
	h := store.NewCRC64NVME()
	h.Write([]byte("12345"))
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	require.NoError(t, err)
	h2 := store.NewCRC64NVME()
	require.NoError(t, h2.(encoding.BinaryUnmarshaler).UnmarshalBinary(state))
	h2.Write([]byte("6789"))
	assert.Equal(t, uint64(0xAE8B14860A799888), h2.Sum64())
	assert.Equal(t, "rosUhgp5mIg=", store.EncodeCRC64NVME(h2.Sum64()))
}
