package store

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrBadCRC64NVME: a declared CRC64NVME is not in S3's form.
var ErrBadCRC64NVME = errors.New("store: crc64nvme must be the base64 of 8 bytes")

// EncodeCRC64NVME writes a CRC-64/NVME as S3 does in
// x-amz-checksum-crc64nvme and in its object attributes: the standard
// base64 of the 8 big-endian bytes. Reporting it in S3's own form lets a
// client compare it with what S3 shows for the object, with no conversion.
func EncodeCRC64NVME(crc uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], crc)
	return base64.StdEncoding.EncodeToString(b[:])
}

// ParseCRC64NVME reads a CRC-64/NVME in the form EncodeCRC64NVME writes.
func ParseCRC64NVME(s string) (uint64, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("%w: %q", ErrBadCRC64NVME, s)
	}
	return binary.BigEndian.Uint64(b), nil
}
