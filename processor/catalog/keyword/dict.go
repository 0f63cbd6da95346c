package keyword

import "hash/maphash"

// dict interns terms: term i is text[start(i):ends[i]], found through an
// open-addressing hash table of term ids. Per term it costs the term's bytes,
// 4 bytes of end offset and ~6 bytes of table (load <= 3/4): far less than a
// map[string]uint32 (a 16-byte string header plus the map's own overhead per
// key), which matters because model numbers make most terms unique.
type dict struct {
	seed  maphash.Seed
	text  []byte
	ends  []uint32
	slots []uint32 // 0 empty, else term id + 1; len is a power of two
}

func newDict() dict {
	return dict{seed: maphash.MakeSeed(), slots: make([]uint32, 64)}
}

func (d *dict) len() int { return len(d.ends) }

// termBytes is term id's bytes, inside text.
func (d *dict) termBytes(id uint32) []byte {
	start := uint32(0)
	if id > 0 {
		start = d.ends[id-1]
	}
	return d.text[start:d.ends[id]]
}

func (d *dict) equal(id uint32, t string) bool {
	return string(d.termBytes(id)) == t // no allocation: the conversion is only compared
}

// lookup returns t's id.
func (d *dict) lookup(t string) (uint32, bool) {
	mask := uint64(len(d.slots) - 1)
	for i := maphash.String(d.seed, t) & mask; ; i = (i + 1) & mask {
		s := d.slots[i]
		if s == 0 {
			return 0, false
		}
		if d.equal(s-1, t) {
			return s - 1, true
		}
	}
}

// intern returns t's id, adding t if it is new.
func (d *dict) intern(t string) uint32 {
	mask := uint64(len(d.slots) - 1)
	i := maphash.String(d.seed, t) & mask
	for ; ; i = (i + 1) & mask {
		s := d.slots[i]
		if s == 0 {
			break
		}
		if d.equal(s-1, t) {
			return s - 1
		}
	}
	id := uint32(len(d.ends))
	d.text = append(d.text, t...)
	d.ends = append(d.ends, uint32(len(d.text)))
	d.slots[i] = id + 1
	if 4*len(d.ends) > 3*len(d.slots) {
		d.rehash(2 * len(d.slots))
	}
	return id
}

func (d *dict) rehash(size int) {
	d.slots = make([]uint32, size)
	mask := uint64(size - 1)
	for id := range d.ends {
		i := maphash.Bytes(d.seed, d.termBytes(uint32(id))) & mask
		for d.slots[i] != 0 {
			i = (i + 1) & mask
		}
		d.slots[i] = uint32(id) + 1
	}
}

func (d *dict) bytes() int64 {
	return int64(cap(d.text)) + 4*int64(cap(d.ends)) + 4*int64(cap(d.slots))
}
