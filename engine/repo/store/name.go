package store

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest name a store accepts. It leaves room under S3's
// 1024-byte key limit for a store prefix, and under common filesystem path limits.
const MaxNameLen = 512

// ValidateName checks that name is a valid object name and returns a permanent
// error matching ErrInvalidName if not.
//
// A name is one or more elements separated by single slashes, such as
// "packs/3fa9c0..." or "config". Each element consists of ASCII letters, digits,
// '.', '_' and '-', and does not start with '.'. So there is no empty name, no
// leading or trailing slash, no "." or ".." element, and no hidden file: names
// mean the same thing on every backend, and a store may use names starting with
// '.' for its own housekeeping (fsstore's temporary files) without ever
// colliding with an object.
func ValidateName(name string) error {
	if name == "" {
		return invalidName(name, "empty name")
	}
	if err := validateElements(name); err != nil {
		return err
	}
	return nil
}

// ValidatePrefix checks a List prefix: either empty, or a name, or a name
// followed by "/", or a name whose last element is cut short ("packs/3f").
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validateElements(strings.TrimSuffix(prefix, "/"))
}

func validateElements(name string) error {
	if len(name) > MaxNameLen {
		return invalidName(name, fmt.Sprintf("longer than %d bytes", MaxNameLen))
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == "" {
			return invalidName(name, "empty path element (leading, trailing or double slash)")
		}
		if elem[0] == '.' {
			return invalidName(name, "path element starts with '.'")
		}
		for i := 0; i < len(elem); i++ {
			if !nameByte(elem[i]) {
				return invalidName(name, fmt.Sprintf("byte %q not allowed (only ASCII letters, digits, '.', '_', '-' and '/')", elem[i]))
			}
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

func invalidName(name, why string) error {
	return Permanent(fmt.Errorf("%w %q: %s", ErrInvalidName, name, why))
}
