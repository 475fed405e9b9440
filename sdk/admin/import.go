package admin

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Volume import streams data larger than the Admin API's 64 KiB request
// limit. It goes through qubesd's internal socket (qubesd.internal.sock),
// in three steps, which is what the reference's admin.vm.volume.Import
// service does with a shell script and dd:
//
//  1. internal.vm.volume.ImportBegin (payload: the new size in decimal, or
//     empty for the volume's current size) answers "<size> <path>";
//  2. the caller writes exactly size bytes to path (WriteImport);
//  3. internal.vm.volume.ImportEnd (payload "ok", or "fail\n<error>")
//     commits or discards them; its reply is the import's result.
//
// The daemon holds the volume between the steps: always send ImportEnd.

// ParseImportBegin parses ImportBegin's reply "<size> <path>".
func ParseImportBegin(body []byte) (size int64, path string, err error) {
	sizeText, path, ok := strings.Cut(string(body), " ")
	size, perr := strconv.ParseInt(sizeText, 10, 64)
	if !ok || perr != nil || size < 0 || path == "" {
		return 0, "", fmt.Errorf("internal.vm.volume.ImportBegin: %w: %q", ErrMalformedReply, body)
	}
	return size, path, nil
}

// ImportEndPayload is ImportEnd's payload for the outcome of the copy.
func ImportEndPayload(copyErr error) []byte {
	if copyErr != nil {
		return []byte("fail\n" + copyErr.Error())
	}
	return []byte("ok")
}

// importBlock is the unit of WriteImport: all-zero blocks are seeked over,
// so that the volume stays sparse.
const importBlock = 64 << 10

// WriteImport copies exactly size bytes from r to the existing file or
// device at path (never truncated or created), seeking over all-zero
// blocks, then syncs it. Less input than size, or more, is an error, with
// the reference service's messages. written, if not nil, is told how many
// bytes each step wrote.
func WriteImport(ctx context.Context, path string, r io.Reader, size int64, written func(n int)) error {
	out, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("error copying data: %v", err)
	}
	defer out.Close()
	buf := make([]byte, importBlock)
	var copied int64
	for copied < size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("error copying data: %v", err)
		}
		m, rerr := io.ReadFull(r, buf[:min(int64(len(buf)), size-copied)])
		if m > 0 {
			var werr error
			if isZero(buf[:m]) {
				_, werr = out.Seek(int64(m), io.SeekCurrent)
			} else {
				_, werr = out.Write(buf[:m])
			}
			if werr != nil {
				return fmt.Errorf("error copying data: %v", werr)
			}
			copied += int64(m)
			if written != nil {
				written(m)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return fmt.Errorf("not enough data (copied %d bytes, expected %d bytes)", copied, size)
		}
		if rerr != nil {
			return fmt.Errorf("error copying data: %v", rerr)
		}
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("error copying data: %v", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("error copying data: %v", err)
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return fmt.Errorf("too much data (expected %d bytes)", size)
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
