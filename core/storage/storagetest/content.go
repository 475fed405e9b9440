package storagetest

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"

	"github.com/qubesgo/qubesd/sdk/pool"
)

// blockSize is the granularity of a content's sparse map.
const blockSize = 4096

// content is a volume's data held in memory: size bytes, of which only the
// blocks that are not all zeros are stored. Stored blocks are never changed
// in place, so copies share them.
type content struct {
	size   uint64
	blocks map[uint64][]byte // block index → blockSize bytes
}

func zeros(size uint64) *content { return &content{size: size, blocks: map[uint64][]byte{}} }

func (c *content) clone() *content {
	return &content{size: c.size, blocks: maps.Clone(c.blocks)}
}

// resized returns a copy of c with the given size: blocks past the end are
// dropped, and the tail of the last block zeroed.
func (c *content) resized(size uint64) *content {
	n := c.clone()
	n.size = size
	for i, b := range n.blocks {
		start := i * blockSize
		switch {
		case start >= size:
			delete(n.blocks, i)
		case start+blockSize > size:
			nb := make([]byte, blockSize)
			copy(nb, b[:size-start])
			n.blocks[i] = nb
		}
	}
	return n
}

// usage is the bytes the stored blocks take.
func (c *content) usage() uint64 { return uint64(len(c.blocks)) * blockSize }

// bytes returns the whole content (tests compare small volumes with it).
func (c *content) bytes() []byte {
	out := make([]byte, c.size)
	for i, b := range c.blocks {
		copy(out[i*blockSize:], b)
	}
	return out
}

// writeFile makes path a file of c's size holding c, sparse where c is
// zeros. The file is created (mode 0600) or truncated.
func (c *content) writeFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(int64(c.size))
	for i, b := range c.blocks {
		if err != nil {
			break
		}
		end := min(uint64(blockSize), c.size-i*blockSize)
		_, err = f.WriteAt(b[:end], int64(i*blockSize))
	}
	return errors.Join(err, f.Close())
}

// readFile reads path (a file this package handed out) into a content,
// skipping its holes.
func readFile(path string) (*content, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	c := zeros(uint64(end))
	buf := make([]byte, blockSize)
	for off := int64(0); off < end; {
		start, stop, err := pool.DataExtent(f, off, end)
		if err != nil {
			return nil, err
		}
		if start >= end {
			break
		}
		start -= start % blockSize
		for ; start < stop; start += blockSize {
			clear(buf)
			if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
				return nil, err
			}
			if !allZero(buf) {
				c.blocks[uint64(start/blockSize)] = bytes.Clone(buf)
			}
		}
		off = start
	}
	return c, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
