package contracts

import (
	"errors"
	"reflect"
	"strings"
)

// DecodeStrict decodes the JSON object in data into v (a pointer to a
// struct) as strictly as the request decoders: at most maxBytes (0: no
// limit), valid UTF-8, no unknown field, nothing after the object. Every
// error is an *Error naming the field; an unknown field's message lists v's
// known fields. Validation is the caller's next step.
func DecodeStrict(data []byte, maxBytes int, v any) error {
	if e := decodeStrict(data, maxBytes, "the limit", v, func(err error) *Error { return strictError(err, v) }); e != nil {
		return e
	}
	return nil
}

// strictError maps a decoder error for any request type v: the catalog
// mapping (nested fields), with a Queries field named and known fields listed.
func strictError(err error, v any) *Error {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var fields []reflect.StructField
	if t != nil && t.Kind() == reflect.Struct {
		fields = reflect.VisibleFields(t)
	}
	if errors.Is(err, errWantStrings) || strings.Contains(err.Error(), errWantStrings.Error()) {
		for _, f := range fields {
			if name := jsonName(f); name != "" && f.Type == reflect.TypeOf(Queries(nil)) {
				return FieldError(name, 0, "%s", errWantStrings)
			}
		}
	}
	if errors.Is(err, errWantIDs) {
		for _, f := range fields {
			if name := jsonName(f); name != "" && f.Type == reflect.TypeOf(TokenIDs{}) {
				return FieldError(name, 0, "%s", errWantIDs)
			}
		}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok && len(fields) > 0 {
		var known []string
		for _, sf := range fields {
			if name := jsonName(sf); name != "" {
				known = append(known, name)
			}
		}
		return FieldError(strings.Trim(f, `"`), 0, "unknown field; known fields are %s", strings.Join(known, ", "))
	}
	return catalogDecodeError(err)
}

// jsonName is the JSON name of a struct field, or "" when it is not in the
// JSON (unexported, tagged "-", or an embedded struct whose fields are).
func jsonName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch {
	case tag == "-", !f.IsExported(), f.Anonymous && tag == "":
		return ""
	case tag != "":
		return tag
	}
	return f.Name
}
