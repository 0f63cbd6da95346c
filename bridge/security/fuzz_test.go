package security

import "testing"

// FuzzParseKeys feeds arbitrary keys files to the parser: it must never
// panic, and every file it accepts holds keys with valid, distinct names,
// distinct hashes and at least one scope each.
func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("# keys\n\nreader " + HashKey("sk-a") + " predict\n  root " + HashKey("sk-b") + " *\nlimited " + HashKey("sk-c") + " predict,jobs rate=1 burst=2\n"))
	f.Add([]byte("# comment\n\nsvc " + HashKey("sk-a") + " predict,admin rate=2.5 burst=3\n"))
	f.Add([]byte("a " + HashKey("sk-a") + " predict\na " + HashKey("sk-b") + " admin\n"))
	f.Add([]byte("bad-hash 1234 predict\n"))
	f.Add([]byte("x " + HashKey("sk-a") + " * rate=NaN burst=-1 extra\n\r\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseKeys(data)
		if err != nil {
			if keys != nil {
				t.Fatalf("keys returned with error %v", err)
			}
			return
		}
		names := map[string]bool{}
		hashes := map[[32]byte]bool{}
		for _, k := range keys {
			if !validKeyName(k.name) || names[k.name] || hashes[k.hash] || len(k.scopes) == 0 {
				t.Fatalf("accepted key %q (duplicate name %v, duplicate hash %v, %d scopes)", k.name, names[k.name], hashes[k.hash], len(k.scopes))
			}
			names[k.name], hashes[k.hash] = true, true
		}
	})
}
