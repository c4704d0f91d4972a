package formdata

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"strings"
	"testing"
)

const benchBoundary = "------------------------d74496d66958873e"

// fileBody is a body with an optional text field and one file part of
// size random bytes.
func fileBody(size int, field string) []byte {
	var b bytes.Buffer
	if field != "" {
		b.WriteString("--" + benchBoundary + "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n")
		b.WriteString(field + "\r\n")
	}
	b.WriteString("--" + benchBoundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n")
	b.WriteString("Content-Type: application/octet-stream\r\n\r\n")
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)
	b.Write(data)
	b.WriteString("\r\n--" + benchBoundary + "--\r\n")
	return b.Bytes()
}

var benchBodies = []struct {
	name string
	body func() []byte
}{
	{"64MiB", func() []byte { return fileBody(64<<20, "") }},
	{"field+64MiB", func() []byte { return fileBody(64<<20, strings.Repeat("note ", 4<<10/5)) }},
}

// BenchmarkFormData reads every part into io.Discard ("copy": io.Copy, so
// WriteTo) or through Read into a 256 KiB buffer ("read256k": as
// spool.Spool does).
func BenchmarkFormData(b *testing.B) {
	for _, bb := range benchBodies {
		body := bb.body()
		b.Run(bb.name+"/copy", func(b *testing.B) {
			benchParts(b, body, func(src io.Reader) partReader { return formdataParts{NewReader(src, benchBoundary, Limits{})} }, copyPart)
		})
		b.Run(bb.name+"/read256k", func(b *testing.B) {
			benchParts(b, body, func(src io.Reader) partReader { return formdataParts{NewReader(src, benchBoundary, Limits{})} }, readPart256k())
		})
	}
}

// BenchmarkMimeMultipart is the same through mime/multipart over a 256 KiB
// bufio.Reader, as api.postMultipart reads today.
func BenchmarkMimeMultipart(b *testing.B) {
	for _, bb := range benchBodies {
		body := bb.body()
		br := bufio.NewReaderSize(nil, 256<<10)
		open := func(src io.Reader) partReader {
			br.Reset(src)
			return mimeParts{multipart.NewReader(br, benchBoundary)}
		}
		b.Run(bb.name+"/copy", func(b *testing.B) { benchParts(b, body, open, copyPart) })
		b.Run(bb.name+"/read256k", func(b *testing.B) { benchParts(b, body, open, readPart256k()) })
	}
}

type partReader interface{ next() (io.Reader, error) }

type formdataParts struct{ *Reader }

func (r formdataParts) next() (io.Reader, error) { return r.NextPart() }

type mimeParts struct{ *multipart.Reader }

func (r mimeParts) next() (io.Reader, error) { return r.NextPart() }

func copyPart(p io.Reader) error { _, err := io.Copy(io.Discard, p); return err }

func readPart256k() func(io.Reader) error {
	buf := make([]byte, 256<<10)
	return func(p io.Reader) error {
		for {
			_, err := p.Read(buf)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
}

func benchParts(b *testing.B, body []byte, open func(io.Reader) partReader, read func(io.Reader) error) {
	src := bytes.NewReader(nil)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(body)
		r := open(src)
		for {
			p, err := r.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := read(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}
