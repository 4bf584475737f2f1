package domain

import "crypto/ed25519"

// SigningKeyForTest returns k's signing key, for tests that forge tokens.
func SigningKeyForTest(k *Keyring) ed25519.PrivateKey { return k.signing }
