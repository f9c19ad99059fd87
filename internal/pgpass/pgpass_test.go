package pgpass

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestVerifierShape checks the verifier's format and that the salt is
// random. That PostgreSQL accepts it is proved where a real server is at
// hand: the local cloud's RDS tests log in over SCRAM with passwords set
// this way.
func TestVerifierShape(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := verifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$") {
		t.Fatalf("verifier %s has the wrong head", v)
	}
	parts := strings.Split(strings.SplitN(v, "$", 3)[2], ":")
	if len(parts) != 2 {
		t.Fatalf("verifier %s lacks StoredKey:ServerKey", v)
	}
	for _, p := range parts {
		if b, err := base64.StdEncoding.DecodeString(p); err != nil || len(b) != 32 {
			t.Errorf("key %q is not 32 bytes of base64 (%v)", p, err)
		}
	}
	if strings.Contains(v, "pencil") {
		t.Error("the verifier contains the password")
	}
	a, _ := Verifier("pencil")
	b, _ := Verifier("pencil")
	if a == b {
		t.Error("two verifiers of one password are equal: the salt is not random")
	}
}
