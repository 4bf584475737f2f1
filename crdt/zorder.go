package crdt

import (
	"errors"
	"fmt"
)

// Z-order keys are fractional indexes: strings that sort, byte by byte, in the
// order their elements stack among siblings. Between any two distinct keys
// there is always another, so an element can be placed between two others
// without touching them.
//
// A key is an integer part followed by an optional fraction, both written in
// the base-62 alphabet 0-9A-Za-z (which is in ASCII order). The integer part
// is a head character and then the digits: heads 'a'..'z' carry 1..26 digits
// of a non-negative integer, heads 'Z'..'A' carry 1..26 digits of a negative
// one, so integer parts of different lengths sort correctly and appending at
// either end grows keys logarithmically. The fraction, which never ends in
// '0', gives arbitrary precision between two consecutive integers.

const keyDigits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// MaxKeyLen is the longest z-order key an update may carry.
const MaxKeyLen = 1024

// ErrKeyRange is returned by [KeyBetween] and [KeysBetween] when the lower key
// is not below the upper one, or when no key exists in the asked range.
var ErrKeyRange = errors.New("crdt: no z-order key in range")

func digitOf(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'Z':
		return int(c-'A') + 10
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}

// intLen returns the length of the integer part (head included) for a head
// character, or 0 if it is not a head.
func intLen(head byte) int {
	switch {
	case 'a' <= head && head <= 'z':
		return int(head-'a') + 2
	case 'A' <= head && head <= 'Z':
		return int('Z'-head) + 2
	}
	return 0
}

// CheckKey reports whether k is a well-formed z-order key: a head, its
// digits, a fraction not ending in '0', only base-62 characters, at most
// [MaxKeyLen] bytes. The error wraps [ErrInvalid].
func CheckKey(k string) error {
	if len(k) == 0 || len(k) > MaxKeyLen {
		return fmt.Errorf("%w: z-order key of length %d", ErrInvalid, len(k))
	}
	n := intLen(k[0])
	if n == 0 || len(k) < n {
		return fmt.Errorf("%w: z-order key %q has a bad integer part", ErrInvalid, k)
	}
	for i := 1; i < len(k); i++ {
		if digitOf(k[i]) < 0 {
			return fmt.Errorf("%w: z-order key %q has a bad character", ErrInvalid, k)
		}
	}
	if len(k) > n && k[len(k)-1] == '0' {
		return fmt.Errorf("%w: z-order key %q ends in a zero fraction digit", ErrInvalid, k)
	}
	return nil
}

func splitKey(k string) (integer, fraction string) {
	n := intLen(k[0])
	return k[:n], k[n:]
}

// incInt returns the integer part after i, or false at the largest one.
func incInt(i string) (string, bool) {
	b := []byte(i)
	for p := len(b) - 1; p >= 1; p-- {
		if b[p] != 'z' {
			b[p] = keyDigits[digitOf(b[p])+1]
			return string(b), true
		}
		b[p] = '0'
	}
	// Every digit was 'z': the next integer has a different length.
	switch h := i[0]; {
	case h == 'Z':
		return "a0", true
	case h == 'z':
		return "", false
	case 'a' <= h:
		return string(h+1) + zeros(len(i)), true
	default: // negative: one digit fewer
		return string(h+1) + zeros(len(i)-2), true
	}
}

// decInt returns the integer part before i, or false at the smallest one.
func decInt(i string) (string, bool) {
	b := []byte(i)
	for p := len(b) - 1; p >= 1; p-- {
		if b[p] != '0' {
			b[p] = keyDigits[digitOf(b[p])-1]
			return string(b), true
		}
		b[p] = 'z'
	}
	switch h := i[0]; {
	case h == 'a':
		return "Zz", true
	case h == 'A':
		return "", false
	case 'a' < h:
		return string(h-1) + zs(len(i)-2), true
	default: // negative: one digit more
		return string(h-1) + zs(len(i)), true
	}
}

func zeros(n int) string { return repeat('0', n) }
func zs(n int) string    { return repeat('z', n) }

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// midFraction returns a fraction strictly between a and b, where b == ""
// stands for 1. Both are fractions without trailing zeros and a < b.
func midFraction(a, b string) string {
	if b != "" {
		n := 0
		for n < len(b) {
			ca := byte('0')
			if n < len(a) {
				ca = a[n]
			}
			if ca != b[n] {
				break
			}
			n++
		}
		if n > 0 {
			rest := ""
			if n < len(a) {
				rest = a[n:]
			}
			return b[:n] + midFraction(rest, b[n:])
		}
	}
	da, db := 0, len(keyDigits)
	if a != "" {
		da = digitOf(a[0])
	}
	if b != "" {
		db = digitOf(b[0])
	}
	if db-da > 1 {
		return string(keyDigits[(da+db)/2])
	}
	if len(b) > 1 {
		return b[:1]
	}
	rest := ""
	if len(a) > 1 {
		rest = a[1:]
	}
	return string(keyDigits[da]) + midFraction(rest, "")
}

// KeyBetween returns a key that sorts strictly between a and b. An empty a
// means "before everything" (below b), an empty b "after everything" (above
// a); both empty give a first key. Keys at either end are one integer step
// away, so appending n times grows keys by O(log n) bytes. It returns an
// error wrapping [ErrInvalid] for a malformed key, and [ErrKeyRange] when a
// is not below b or the range is exhausted.
func KeyBetween(a, b string) (string, error) {
	if a != "" {
		if err := CheckKey(a); err != nil {
			return "", err
		}
	}
	if b != "" {
		if err := CheckKey(b); err != nil {
			return "", err
		}
	}
	if a != "" && b != "" && a >= b {
		return "", fmt.Errorf("%w: %q is not below %q", ErrKeyRange, a, b)
	}
	var k string
	switch {
	case a == "" && b == "":
		return "a0", nil
	case a == "":
		ib, fb := splitKey(b)
		if i, ok := decInt(ib); ok {
			return i, nil
		}
		if fb == "" {
			return "", fmt.Errorf("%w: nothing below %q", ErrKeyRange, b)
		}
		k = ib + midFraction("", fb)
	case b == "":
		ia, fa := splitKey(a)
		if i, ok := incInt(ia); ok {
			return i, nil
		}
		k = ia + midFraction(fa, "")
	default:
		ia, fa := splitKey(a)
		ib, fb := splitKey(b)
		if ia == ib {
			k = ia + midFraction(fa, fb)
		} else if i, _ := incInt(ia); i < b {
			return i, nil
		} else {
			k = ia + midFraction(fa, "")
		}
	}
	if len(k) > MaxKeyLen {
		return "", fmt.Errorf("%w: key between %q and %q would exceed %d bytes", ErrKeyRange, a, b, MaxKeyLen)
	}
	return k, nil
}

// KeysBetween returns n keys in ascending order, strictly between a and b
// (empty meaning unbounded, as for [KeyBetween]). Between two bounds the keys
// are spread by bisection, so their length grows with log n. Errors are those
// of [KeyBetween].
func KeysBetween(a, b string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	out := make([]string, 0, n)
	switch {
	case b == "":
		k := a
		for range n {
			next, err := KeyBetween(k, "")
			if err != nil {
				return nil, err
			}
			out = append(out, next)
			k = next
		}
		return out, nil
	case a == "":
		k := b
		for range n {
			prev, err := KeyBetween("", k)
			if err != nil {
				return nil, err
			}
			out = append(out, prev)
			k = prev
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out, nil
	}
	return keysBisect(a, b, n, out)
}

func keysBisect(a, b string, n int, out []string) ([]string, error) {
	if n == 0 {
		return out, nil
	}
	c, err := KeyBetween(a, b)
	if err != nil {
		return nil, err
	}
	half := n / 2
	if out, err = keysBisect(a, c, half, out); err != nil {
		return nil, err
	}
	out = append(out, c)
	return keysBisect(c, b, n-half-1, out)
}
