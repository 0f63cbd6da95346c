package catalog

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// The catalog's JetStream layout: one stream per catalog, one subject per
// product holding its latest record (MaxMsgsPerSubject 1, like a KV bucket).
// A record carries the product and its embedding together, so a product is
// never stored without its embedding or the other way round.
const (
	subjectPrefix = "simmatch.catalogdata."

	headerOp    = "Simmatch-Op"    // "delete" for a tombstone
	headerModel = "Simmatch-Model" // the name@versions of the embeddings, comma-separated, in record order

	metaModelName    = "simmatch.model.name"
	metaModelVersion = "simmatch.model.version"
	metaModelDims    = "simmatch.model.dimensions"
	metaCatalog      = "simmatch.catalog"
)

func streamName(catalog string) string { return contracts.CatalogStream(catalog) }

func catalogSubjects(catalog string) string { return subjectPrefix + catalog + ".>" }

// productSubject puts the id in one subject token: base64url, so any id
// (dots, spaces, wildcards) is safe.
func productSubject(catalog, id string) string {
	return subjectPrefix + catalog + "." + base64.RawURLEncoding.EncodeToString([]byte(id))
}

func modelKey(m contracts.ModelInfo) string { return m.Name + "@" + m.Version }

func streamMetadata(catalog string, m contracts.ModelInfo) map[string]string {
	return map[string]string{
		metaCatalog: catalog, metaModelName: m.Name, metaModelVersion: m.Version,
		metaModelDims: strconv.Itoa(m.Dimensions),
	}
}

func modelFromMetadata(md map[string]string) contracts.ModelInfo {
	d, _ := strconv.Atoi(md[metaModelDims])
	return contracts.ModelInfo{Name: md[metaModelName], Version: md[metaModelVersion], Dimensions: d}
}

// controlToken is the product-subject token of the catalog's model record:
// '=' is outside base64url, so no product id maps to it.
const controlToken = "=model"

func controlSubject(catalog string) string { return subjectPrefix + catalog + "." + controlToken }

// control is the catalog's model record: which version searches use
// (Active) and which one is being embedded in the background (Pending, ""
// when none). It travels in the stream, so every processor switches at the
// same sequence.
type control struct {
	Active  string `json:"active"`
	Pending string `json:"pending,omitempty"`
}

// encodeRecord lays a product out as: uint32 length of its JSON, the JSON,
// then each embedding as little-endian float32s, in the order of the
// models (name@version) listed in the Simmatch-Model header.
func encodeRecord(catalog string, p contracts.Product, vecs map[string][]float32) (*nats.Msg, error) {
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(vecs))
	n := 0
	for k, v := range vecs {
		keys = append(keys, k)
		n += len(v)
	}
	slices.Sort(keys)
	b := make([]byte, 4+len(js)+4*n)
	binary.LittleEndian.PutUint32(b, uint32(len(js)))
	copy(b[4:], js)
	o := 4 + len(js)
	for _, k := range keys {
		for _, f := range vecs[k] {
			binary.LittleEndian.PutUint32(b[o:], math.Float32bits(f))
			o += 4
		}
	}
	msg := nats.NewMsg(productSubject(catalog, p.ID))
	msg.Data = b
	msg.Header.Set(headerModel, strings.Join(keys, ","))
	return msg, nil
}

func tombstone(catalog, id string) *nats.Msg {
	msg := nats.NewMsg(productSubject(catalog, id))
	msg.Header.Set(headerOp, "delete")
	msg.Data = []byte(id)
	return msg
}

// record is a decoded stream message: a product with its embeddings by
// model, a tombstone, or the catalog's model record.
type record struct {
	product contracts.Product
	vecs    map[string][]float32
	deleted bool
	control *control
}

// decodeRecord is encodeRecord's inverse; every embedding has dims dimensions.
func decodeRecord(subject string, h nats.Header, data []byte, dims int) (rec record, err error) {
	if strings.HasSuffix(subject, "."+controlToken) {
		rec.control = &control{}
		if err := json.Unmarshal(data, rec.control); err != nil {
			return rec, fmt.Errorf("catalog: model record: %w", err)
		}
		return rec, nil
	}
	if h.Get(headerOp) == "delete" {
		rec.product, rec.deleted = contracts.Product{ID: string(data)}, true
		return rec, nil
	}
	if len(data) < 4 {
		return rec, fmt.Errorf("catalog: record of %d bytes is too short", len(data))
	}
	keys := strings.Split(h.Get(headerModel), ",")
	n := int(binary.LittleEndian.Uint32(data))
	if 4+n > len(data) || (len(data)-4-n) != 4*dims*len(keys) {
		return rec, fmt.Errorf("catalog: record has %d bytes after %d bytes of JSON; want %d embeddings of %d dimensions", len(data)-4-n, n, len(keys), dims)
	}
	if err := json.Unmarshal(data[4:4+n], &rec.product); err != nil {
		return rec, fmt.Errorf("catalog: record JSON: %w", err)
	}
	rec.vecs = make(map[string][]float32, len(keys))
	o := 4 + n
	for _, k := range keys {
		vec := make([]float32, dims)
		for i := range vec {
			vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[o:]))
			o += 4
		}
		rec.vecs[k] = vec
	}
	return rec, nil
}
