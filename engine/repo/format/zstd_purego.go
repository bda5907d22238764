//go:build !cgo

package format

var nativeZstd = goZstd
