package catalog

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// The catalog's JetStream layout: one stream per catalog, one subject per
// product holding its latest record (MaxMsgsPerSubject 1, like a KV bucket).
// A record carries the product and its embedding together, so a product is
// never stored without its embedding or the other way round.
const (
	streamPrefix  = "SIMMATCH_CATALOG_"
	subjectPrefix = "simmatch.catalogdata."

	headerOp    = "Simmatch-Op"    // "delete" for a tombstone
	headerModel = "Simmatch-Model" // name@version of the embedding

	metaModelName    = "simmatch.model.name"
	metaModelVersion = "simmatch.model.version"
	metaModelDims    = "simmatch.model.dimensions"
	metaCatalog      = "simmatch.catalog"
)

func streamName(catalog string) string { return streamPrefix + catalog }

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

// encodeRecord lays a product out as: uint32 length of its JSON, the JSON,
// then the embedding as little-endian float32s.
func encodeRecord(catalog string, p contracts.Product, vec []float32, m contracts.ModelInfo) (*nats.Msg, error) {
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4+len(js)+4*len(vec))
	binary.LittleEndian.PutUint32(b, uint32(len(js)))
	copy(b[4:], js)
	o := 4 + len(js)
	for i, f := range vec {
		binary.LittleEndian.PutUint32(b[o+4*i:], math.Float32bits(f))
	}
	msg := nats.NewMsg(productSubject(catalog, p.ID))
	msg.Data = b
	msg.Header.Set(headerModel, modelKey(m))
	return msg, nil
}

func tombstone(catalog, id string) *nats.Msg {
	msg := nats.NewMsg(productSubject(catalog, id))
	msg.Header.Set(headerOp, "delete")
	msg.Data = []byte(id)
	return msg
}

// decodeRecord is encodeRecord's inverse; deleted reports a tombstone, whose
// body is the id.
func decodeRecord(h nats.Header, data []byte, dims int) (p contracts.Product, vec []float32, deleted bool, err error) {
	if h.Get(headerOp) == "delete" {
		return contracts.Product{ID: string(data)}, nil, true, nil
	}
	if len(data) < 4 {
		return p, nil, false, fmt.Errorf("catalog: record of %d bytes is too short", len(data))
	}
	n := int(binary.LittleEndian.Uint32(data))
	if 4+n > len(data) || (len(data)-4-n) != 4*dims {
		return p, nil, false, fmt.Errorf("catalog: record has %d bytes after %d bytes of JSON; want a %d-dimension embedding", len(data)-4-n, n, dims)
	}
	if err := json.Unmarshal(data[4:4+n], &p); err != nil {
		return p, nil, false, fmt.Errorf("catalog: record JSON: %w", err)
	}
	vec = make([]float32, dims)
	for i := range vec {
		vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4+n+4*i:]))
	}
	return p, vec, false, nil
}
