// Package pgpass turns a password into the SCRAM-SHA-256 verifier that
// PostgreSQL stores (RFC 5802/7677, as in PostgreSQL's own
// pg_fe_scram_build_secret), so that CREATE ROLE … PASSWORD and ALTER ROLE
// … PASSWORD carry the verifier and never the password: a failed
// statement is written to the server's log with its text, and the
// password must not be in it.
//
// It must never log, store or return the password itself.
package pgpass

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Iterations is PostgreSQL's default scram_iterations.
const Iterations = 4096

// Verifier returns "SCRAM-SHA-256$4096:salt$StoredKey:ServerKey" for
// password, with a fresh random salt.
func Verifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading a salt: %w", err)
	}
	return verifier(password, salt, Iterations)
}

func verifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("deriving the SCRAM key: %w", err)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(serverKey)), nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// Literal returns the verifier of password as a SQL string literal, for
// `… PASSWORD <literal>`. The verifier holds only base64 and punctuation,
// so it needs no escaping beyond the quotes.
func Literal(password string) (string, error) {
	v, err := Verifier(password)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(v, `'\`) {
		return "", fmt.Errorf("unexpected character in a SCRAM verifier")
	}
	return "'" + v + "'", nil
}
