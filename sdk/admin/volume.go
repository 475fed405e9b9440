package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// VolumeInfo is the reply of admin.vm.volume.Info: key=value lines.
type VolumeInfo struct {
	Pool            string
	VID             string
	Size            int64 // bytes
	Usage           int64 // bytes
	RW              bool
	Source          string // "" if the volume has no source
	Path            string
	SaveOnStop      bool
	SnapOnStart     bool
	RevisionsToKeep int64
	Ephemeral       bool
	IsOutdated      bool
	// Fields holds every line of the reply, in order, including unknown
	// keys.
	Fields []KV
}

// Volumes returns the names of the volumes of vm (admin.vm.volume.List),
// typically root, private, volatile and kernel; dom0 has none.
func (c *Client) Volumes(ctx context.Context, vm string) ([]string, error) {
	return c.list(ctx, "admin.vm.volume.List", vm, "")
}

// VolumeInfo returns the description of volume of vm
// (admin.vm.volume.Info).
func (c *Client) VolumeInfo(ctx context.Context, vm, volume string) (VolumeInfo, error) {
	body, err := c.Call(ctx, "admin.vm.volume.Info", vm, volume, nil)
	if err != nil {
		return VolumeInfo{}, err
	}
	var vi VolumeInfo
	for _, line := range lines(body) {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return VolumeInfo{}, fmt.Errorf("admin.vm.volume.Info: %w: %q", ErrMalformedReply, line)
		}
		vi.Fields = append(vi.Fields, KV{k, v})
		switch k {
		case "pool":
			vi.Pool = v
		case "vid":
			vi.VID = v
		case "size":
			vi.Size, _ = strconv.ParseInt(v, 10, 64)
		case "usage":
			vi.Usage, _ = strconv.ParseInt(v, 10, 64)
		case "rw":
			vi.RW = v == "True"
		case "source":
			vi.Source = v
		case "path":
			vi.Path = v
		case "save_on_stop":
			vi.SaveOnStop = v == "True"
		case "snap_on_start":
			vi.SnapOnStart = v == "True"
		case "revisions_to_keep":
			vi.RevisionsToKeep, _ = strconv.ParseInt(v, 10, 64)
		case "ephemeral":
			vi.Ephemeral = v == "True"
		case "is_outdated":
			vi.IsOutdated = v == "True"
		}
	}
	return vi, nil
}
