package pool

import (
	"maps"
	"math"
	"time"

	storagev1 "github.com/qubesgo/qubesd/sdk/proto/storage/v1"
)

// Conversions between the Go types and storage.v1's messages. A nil message
// converts to the zero value, so a request missing a field fails the checks
// rather than crashing.

func poolToProto(p Pool) *storagev1.Pool {
	return &storagev1.Pool{Name: p.Name, Config: maps.Clone(p.Config)}
}

func poolFromProto(m *storagev1.Pool) Pool {
	return Pool{Name: m.GetName(), Config: maps.Clone(m.GetConfig())}
}

func volumeToProto(v Volume) *storagev1.Volume {
	return &storagev1.Volume{
		Vid:             v.VID,
		Name:            v.Name,
		Size:            v.Size,
		Rw:              v.RW,
		SnapOnStart:     v.SnapOnStart,
		SaveOnStop:      v.SaveOnStop,
		RevisionsToKeep: clampInt32(v.RevisionsToKeep),
		SourceVid:       v.SourceVID,
		Ephemeral:       v.Ephemeral,
	}
}

func volumeFromProto(m *storagev1.Volume) Volume {
	return Volume{
		VID:             m.GetVid(),
		Name:            m.GetName(),
		Size:            m.GetSize(),
		RW:              m.GetRw(),
		SnapOnStart:     m.GetSnapOnStart(),
		SaveOnStop:      m.GetSaveOnStop(),
		RevisionsToKeep: int(m.GetRevisionsToKeep()),
		SourceVID:       m.GetSourceVid(),
		Ephemeral:       m.GetEphemeral(),
	}
}

func clampInt32(n int) int32 {
	switch {
	case n > math.MaxInt32:
		return math.MaxInt32
	case n < math.MinInt32:
		return math.MinInt32
	}
	return int32(n)
}

func infoToProto(i Info) *storagev1.InfoResponse {
	keys := make([]*storagev1.ConfigKey, len(i.PoolConfig))
	for n, k := range i.PoolConfig {
		keys[n] = &storagev1.ConfigKey{Name: k.Name, Description: k.Description, Required: k.Required, DefaultValue: k.Default}
	}
	c := i.Capabilities
	return &storagev1.InfoResponse{
		Name:            i.Name,
		Version:         i.Version,
		Description:     i.Description,
		ProtocolVersion: uint32(max(i.ProtocolVersion, 0)),
		Capabilities: &storagev1.Capabilities{
			Revisions:      c.Revisions,
			Shrink:         c.Shrink,
			FastClone:      c.FastClone,
			Import:         c.Import,
			Export:         c.Export,
			Ephemeral:      c.Ephemeral,
			OriginSnapshot: c.OriginSnapshot,
		},
		PoolConfig: keys,
	}
}

func infoFromProto(m *storagev1.InfoResponse) Info {
	var keys []ConfigKey
	for _, k := range m.GetPoolConfig() {
		keys = append(keys, ConfigKey{Name: k.GetName(), Description: k.GetDescription(), Required: k.GetRequired(), Default: k.GetDefaultValue()})
	}
	c := m.GetCapabilities()
	return Info{
		Name:            m.GetName(),
		Version:         m.GetVersion(),
		Description:     m.GetDescription(),
		ProtocolVersion: int(m.GetProtocolVersion()),
		Capabilities: Capabilities{
			Revisions:      c.GetRevisions(),
			Shrink:         c.GetShrink(),
			FastClone:      c.GetFastClone(),
			Import:         c.GetImport(),
			Export:         c.GetExport(),
			Ephemeral:      c.GetEphemeral(),
			OriginSnapshot: c.GetOriginSnapshot(),
		},
		PoolConfig: keys,
	}
}

func stateToProto(s VolumeState) *storagev1.VolumeState {
	return &storagev1.VolumeState{Vid: s.VID, Size: s.Size, Usage: s.Usage, Dirty: s.Dirty, Outdated: s.Outdated, Path: s.Path}
}

func stateFromProto(m *storagev1.VolumeState) VolumeState {
	return VolumeState{VID: m.GetVid(), Size: m.GetSize(), Usage: m.GetUsage(), Dirty: m.GetDirty(), Outdated: m.GetOutdated(), Path: m.GetPath()}
}

func revisionToProto(r Revision) *storagev1.Revision {
	var ns int64
	if !r.Time.IsZero() {
		ns = r.Time.UnixNano()
	}
	return &storagev1.Revision{Id: r.ID, UnixNanos: ns}
}

func revisionFromProto(m *storagev1.Revision) Revision {
	r := Revision{ID: m.GetId()}
	if m.GetUnixNanos() != 0 {
		r.Time = time.Unix(0, m.GetUnixNanos())
	}
	return r
}
