package statefile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type doc struct {
	Version int               `json:"version"`
	Items   map[string]string `json:"items"`
}

func TestWriteReadJSON(t *testing.T) {
	tests := []struct {
		name      string
		existing  string // file content before the write; "" for none
		subdir    string // written under a directory not yet made
		in        doc
		wantBytes string
	}{
		{name: "new file", in: doc{Version: 1, Items: map[string]string{"a": "b"}},
			wantBytes: "{\n  \"version\": 1,\n  \"items\": {\n    \"a\": \"b\"\n  }\n}"},
		{name: "replaces old", existing: `{"version":9}`, in: doc{Version: 2},
			wantBytes: "{\n  \"version\": 2,\n  \"items\": null\n}"},
		{name: "makes directory", subdir: "a/b", in: doc{Version: 3},
			wantBytes: "{\n  \"version\": 3,\n  \"items\": null\n}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.subdir)
			path := filepath.Join(dir, "state.json")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteJSON(path, tt.in); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.wantBytes {
				t.Errorf("file is %q, want %q", b, tt.wantBytes)
			}
			var out doc
			found, err := ReadJSON(path, &out)
			if err != nil || !found {
				t.Fatalf("ReadJSON = %v, %v; want true, nil", found, err)
			}
			if !reflect.DeepEqual(out, tt.in) {
				t.Errorf("read back %+v, want %+v", out, tt.in)
			}
			names, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(names) != 1 {
				t.Errorf("directory holds %d entries, want only the state file (no temporary left)", len(names))
			}
		})
	}
}

func TestReadJSON(t *testing.T) {
	tests := []struct {
		name      string
		content   *string // nil: no file
		wantFound bool
		wantErr   bool
		want      doc
	}{
		{name: "missing", content: nil, want: doc{Version: -1}},
		{name: "valid", content: ptr(`{"version":4}`), wantFound: true, want: doc{Version: 4}},
		{name: "corrupt", content: ptr(`{"version":`), wantFound: true, wantErr: true, want: doc{Version: -1}},
		{name: "empty", content: ptr(``), wantFound: true, wantErr: true, want: doc{Version: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got := doc{Version: -1}
			found, err := ReadJSON(path, &got)
			if found != tt.wantFound || (err != nil) != tt.wantErr {
				t.Fatalf("ReadJSON = %v, %v; want found %v, error %v", found, err, tt.wantFound, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	// A file where the directory should be.
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		v    any
	}{
		{name: "unencodable", path: filepath.Join(dir, "a.json"), v: make(chan int)},
		{name: "directory is a file", path: filepath.Join(blocker, "a.json"), v: doc{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteJSON(tt.path, tt.v)
			if err == nil {
				t.Fatal("WriteJSON succeeded")
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s", err, tt.path)
			}
			if _, err := os.Stat(tt.path); err == nil {
				t.Errorf("%s exists after a failed write", tt.path)
			}
		})
	}
}

func ptr(s string) *string { return &s }
