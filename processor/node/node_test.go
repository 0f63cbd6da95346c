package node

import "testing"

func TestVersionFromDir(t *testing.T) {
	for _, tc := range []struct{ name, dir, model, want string }{
		{"store fp32", "models/all-MiniLM-L6-v2/fp32", "all-MiniLM-L6-v2", "fp32"},
		{"store int8 absolute, trailing slash", "/srv/models/all-MiniLM-L6-v2/int8/", "all-MiniLM-L6-v2", "int8"},
		{"other model's store", "models/other/v2", "all-MiniLM-L6-v2", "1"},
		{"named after the model itself", "models/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "1"},
		{"outside the store", "/tmp/mymodel", "all-MiniLM-L6-v2", "1"},
		{"custom name", "models/mini/2024-06", "mini", "2024-06"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VersionFromDir(tc.dir, tc.model); got != tc.want {
				t.Errorf("VersionFromDir(%q, %q) = %q, want %q", tc.dir, tc.model, got, tc.want)
			}
		})
	}
}
