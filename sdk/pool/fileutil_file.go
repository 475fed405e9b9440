package pool

import (
	"context"
	"os"
)

// CopySparseFile makes dst, an open file, a copy of src's content, keeping
// src's holes as CopySparse does (and sharing blocks where the file system
// can). Unlike CopySparse it writes dst in place: it is for drivers that
// manage the file themselves — name it, size it, set its times, sync and
// rename it (as CopySparse's temporary file is). dst is emptied first, so
// what it held before does not show through src's holes. Both files'
// offsets move.
func CopySparseFile(ctx context.Context, dst, src *os.File) error {
	if err := dst.Truncate(0); err != nil {
		return err
	}
	return copyData(ctx, dst, src)
}
