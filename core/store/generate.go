package store

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strconv"
)

// GenerateDocument returns a Document shaped like the qubes.xml the
// reference implementation writes for a small test system, with n AppVMs:
// dom0 (AdminVM, qid 0), the TemplateVM debian-12-xfce (qid 1), sys-net
// (qid 2) and sys-firewall (qid 3), and the AppVMs vm0001, vm0002, …
// (qids from 4), with the eight standard labels, the pools varlibqubes and
// linux-kernel and the global properties of the recorded fixture. Domains are
// sorted by name with dom0 first, as the reference writes them.
//
// Every value is deterministic (UUIDs are derived from the qid), so the
// encoding is reproducible: GenerateDocument(10) differs from
// shared/fixtures/qubes-n10.xml only in the UUIDs. Tests and benchmarks of
// other packages use it to build large stores.
func GenerateDocument(n int) *Document {
	doc := &Document{
		Labels: []Label{
			{"label-1", "0xcc0000", "red"},
			{"label-2", "0xf57900", "orange"},
			{"label-3", "0xedd400", "yellow"},
			{"label-4", "0x73d216", "green"},
			{"label-5", "0x555555", "gray"},
			{"label-6", "0x3465a4", "blue"},
			{"label-7", "0x75507b", "purple"},
			{"label-8", "0x000000", "black"},
		},
		Pools: []Pool{
			{Attrs: []Attr{
				{"name", "varlibqubes"}, {"dir_path", "/var/lib/qubes"}, {"driver", "file-reflink"},
				{"revisions_to_keep", "1"}, {"ephemeral_volatile", "False"},
			}},
			{Attrs: []Attr{
				{"name", "linux-kernel"}, {"dir_path", "/var/lib/qubes/vm-kernels"}, {"driver", "linux-kernel"},
			}},
		},
		Properties: []Property{
			{"clockvm", "sys-net"},
			{"default_kernel", "6.6.0-baseline"},
			{"default_netvm", "sys-firewall"},
			{"default_pool_kernel", "linux-kernel"},
			{"default_template", "debian-12-xfce"},
			{"updatevm", "sys-firewall"},
		},
	}
	const template = "debian-12-xfce"
	commonTags := []string{"guivm-dom0", "audiovm-dom0"}

	domains := []Domain{
		{
			ID: "domain-1", Class: "TemplateVM",
			Properties: []Property{
				{"label", "black"}, {"name", template}, {"qid", "1"}, {"uuid", GeneratedUUID(1)},
			},
			Tags:            append([]string(nil), commonTags...),
			Devices:         []*Node{pciNode()},
			VolumeConfig:    templateVolumes(template),
			HasVolumeConfig: true,
		},
		{
			ID: "domain-3", Class: "AppVM",
			Properties: []Property{
				{"label", "green"}, {"name", "sys-firewall"}, {"provides_network", "True"}, {"qid", "3"},
				{"uuid", GeneratedUUID(3)}, {"netvm", "sys-net"}, {"template", template},
			},
			Tags:            append([]string(nil), commonTags...),
			Devices:         []*Node{pciNode()},
			VolumeConfig:    appVolumes("sys-firewall", template),
			HasVolumeConfig: true,
		},
		{
			ID: "domain-2", Class: "AppVM",
			Properties: []Property{
				{"label", "red"}, {"name", "sys-net"}, {"provides_network", "True"}, {"qid", "2"},
				{"uuid", GeneratedUUID(2)}, {"netvm", ""}, {"template", template},
			},
			Features:        []Feature{{"service.clocksync", "1"}},
			Tags:            append([]string(nil), commonTags...),
			Devices:         []*Node{pciNode()},
			VolumeConfig:    appVolumes("sys-net", template),
			HasVolumeConfig: true,
		},
	}
	for i := 1; i <= n; i++ {
		qid := i + 3
		name := fmt.Sprintf("vm%04d", i)
		domains = append(domains, Domain{
			ID: "domain-" + strconv.Itoa(qid), Class: "AppVM",
			Properties: []Property{
				{"label", doc.Labels[i%len(doc.Labels)].Name}, {"name", name}, {"qid", strconv.Itoa(qid)},
				{"uuid", GeneratedUUID(qid)}, {"template", template},
			},
			Features:        []Feature{{"baseline-index", strconv.Itoa(i)}},
			Tags:            []string{"guivm-dom0", "audiovm-dom0", "baseline"},
			Devices:         []*Node{pciNode()},
			VolumeConfig:    appVolumes(name, template),
			HasVolumeConfig: true,
		})
	}
	sort.SliceStable(domains, func(a, b int) bool {
		return domains[a].Properties[1].Value < domains[b].Properties[1].Value
	})
	doc.Domains = make([]Domain, 0, len(domains)+1)
	doc.Domains = append(doc.Domains, Domain{
		ID: "domain-0", Class: "AdminVM",
		Properties: []Property{{"label", "black"}},
	})
	doc.Domains = append(doc.Domains, domains...)
	return doc
}

// GeneratedUUID is the UUID GenerateDocument gives the qube with this qid: a
// version 4 UUID derived from a hash of the qid.
func GeneratedUUID(qid int) string {
	h := sha256.Sum256([]byte("qubesd-generated-qube-" + strconv.Itoa(qid)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func pciNode() *Node {
	return &Node{Name: "devices", Attrs: []Attr{{"class", "pci"}}}
}

func kernelVolume() Volume {
	return Volume{Attrs: []Attr{
		{"name", "kernel"}, {"pool", "linux-kernel"}, {"vid", "6.6.0-baseline"}, {"revisions_to_keep", "0"},
		{"rw", "False"}, {"save_on_stop", "False"}, {"snap_on_start", "False"},
	}}
}

func templateVolumes(name string) []Volume {
	dir := "vm-templates/" + name + "/"
	return []Volume{
		{Attrs: []Attr{
			{"name", "root"}, {"pool", "varlibqubes"}, {"vid", dir + "root"}, {"revisions_to_keep", "1"},
			{"rw", "True"}, {"save_on_stop", "True"}, {"snap_on_start", "False"}, {"size", "10737418240"},
		}},
		{Attrs: []Attr{
			{"name", "private"}, {"pool", "varlibqubes"}, {"vid", dir + "private"}, {"revisions_to_keep", "1"},
			{"rw", "True"}, {"save_on_stop", "True"}, {"snap_on_start", "False"}, {"size", "2147483648"},
		}},
		{Attrs: []Attr{
			{"name", "volatile"}, {"pool", "varlibqubes"}, {"vid", dir + "volatile"}, {"revisions_to_keep", "1"},
			{"rw", "True"}, {"save_on_stop", "False"}, {"snap_on_start", "False"}, {"size", "10737418240"},
		}},
		kernelVolume(),
	}
}

func appVolumes(name, template string) []Volume {
	dir := "appvms/" + name + "/"
	return []Volume{
		{Attrs: []Attr{
			{"name", "root"}, {"pool", "varlibqubes"}, {"vid", dir + "root"}, {"revisions_to_keep", "1"},
			{"rw", "True"}, {"save_on_stop", "False"}, {"snap_on_start", "True"}, {"size", "10737418240"},
			{"source", "vm-templates/" + template + "/root"},
		}},
		{Attrs: []Attr{
			{"name", "private"}, {"pool", "varlibqubes"}, {"vid", dir + "private"}, {"revisions_to_keep", "1"},
			{"rw", "True"}, {"save_on_stop", "True"}, {"snap_on_start", "False"}, {"size", "2147483648"},
		}},
		{Attrs: []Attr{
			{"name", "volatile"}, {"pool", "varlibqubes"}, {"vid", dir + "volatile"}, {"revisions_to_keep", "1"},
			{"rw", "True"}, {"save_on_stop", "False"}, {"snap_on_start", "False"}, {"size", "10737418240"},
		}},
		kernelVolume(),
	}
}
