//go:build integration && cgo

// Bindings to libspandsp's G.722 for the cross-check in spandsp_test.go
// only (build tag integration): nothing of the library is copied or shipped.

package g722

/*
#cgo LDFLAGS: -l:libspandsp.so.2
#include <stdint.h>
void *g722_encode_init(void *s, int rate, int options);
int g722_encode(void *s, uint8_t g722_data[], const int16_t amp[], int len);
void *g722_decode_init(void *s, int rate, int options);
int g722_decode(void *s, int16_t amp[], const uint8_t g722_data[], int len);
*/
import "C"

import "unsafe"

func spanEncoder() unsafe.Pointer { return C.g722_encode_init(nil, 64000, 0) }
func spanDecoder() unsafe.Pointer { return C.g722_decode_init(nil, 64000, 0) }

func spanEncode(st unsafe.Pointer, pcm []int16) []byte {
	out := make([]byte, len(pcm)/2)
	n := C.g722_encode(st, (*C.uint8_t)(&out[0]), (*C.int16_t)(&pcm[0]), C.int(len(pcm)))
	return out[:n]
}

func spanDecode(st unsafe.Pointer, code []byte) []int16 {
	out := make([]int16, 2*len(code))
	n := C.g722_decode(st, (*C.int16_t)(&out[0]), (*C.uint8_t)(&code[0]), C.int(len(code)))
	return out[:n]
}
