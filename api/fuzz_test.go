package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// FuzzFraming checks that FrameReader gives the same messages however the
// stream is cut into reads, and that every message respects the limit and
// holds no NUL or surrounding whitespace.
func FuzzFraming(f *testing.F) {
	f.Add([]byte("{\"cmd\":\"get-status\"}\x00"), uint8(1), uint8(16))
	f.Add([]byte("{\"a\":1}\x00\r\n{\"b\":2}\x00"), uint8(3), uint8(16))
	f.Add([]byte("0123456789abcdefXYZ\x00{}\x00"), uint8(2), uint8(8))
	f.Add([]byte("\x00\x00  \x00"), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk, max uint8) {
		limit := int(max) + 1
		whole, wholeErr := readAll(NewFrameReader(bytes.NewReader(data), limit))
		split, splitErr := readAll(NewFrameReader(&chunkReader{data: data, sizes: []int{int(chunk%32) + 1}}, limit))
		if !errors.Is(splitErr, wholeErr) && !errors.Is(wholeErr, splitErr) {
			t.Fatalf("errors differ: whole %v, split %v", wholeErr, splitErr)
		}
		if len(whole) != len(split) {
			t.Fatalf("whole %q\nsplit %q", whole, split)
		}
		for i := range whole {
			if whole[i] != split[i] {
				t.Fatalf("message %d: whole %q, split %q", i, whole[i], split[i])
			}
			m := whole[i]
			if m == "ERR:too long" {
				continue
			}
			if len(m) == 0 || len(m) > limit || bytes.IndexByte([]byte(m), 0) >= 0 || isSpace(m[0]) || isSpace(m[len(m)-1]) {
				t.Fatalf("bad message %q (limit %d)", m, limit)
			}
		}
	})
}

// FuzzDecodeCommand checks that ParseCommand never panics, always returns a
// *CommandError on failure, and returns only well-formed commands.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"login","account":"account-3","user":"3003","pass":"sip3003","server":"127.0.0.1"}`,
		`{"cmd":"make-call","account":"account-1","num":"3002"}`,
		"{\n  \"cmd\": \"make-call\",\n  \"account\": \"account-1\"\n  \"num\": \"3002\"\n}",
		`{"cmd":"answer-call","account":"account-1","call_id":0}`,
		`{"cmd":"switch-call","account":"account-1","call_id":"1"}`,
		`{"cmd":"get-status"}`,
		`{"cmd":"hangup-call","account":"a","call_id":3,"decline":true}`,
		`{"cmd":"logout","account":""}`,
		`{"cmd":"ping","token":"x"}`,
		`{"cmd":"send-dtmf","account":"a","call_id":1,"digits":"1#","duration_ms":120}`,
		`{"cmd":"transfer-call","account":"a","call_id":1,"num":"3003"}`,
		`[1,2]`,
		"{\"cmd\":\"logout\",\"account\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := ParseCommand(msg)
		if err != nil {
			var ce *CommandError
			if !errors.As(err, &ce) || ce.Msg == "" {
				t.Fatalf("error %v (%T) is not a *CommandError with a message", err, err)
			}
			return
		}
		if len(c.Tag) > MaxTagBytes {
			t.Fatalf("tag of %d bytes accepted", len(c.Tag))
		}
		switch c.Name {
		case CmdGetStatus, CmdPing, CmdResume, CmdReload, CmdTrace, CmdSIPTrace:
		case CmdLogLevel:
			if c.Level != "" && c.Level != "debug" && c.Level != "info" && c.Level != "warn" && c.Level != "error" {
				t.Fatalf("level %q accepted", c.Level)
			}
		case CmdLogin, CmdMakeCall, CmdAnswerCall, CmdSwitchCall, CmdHangupCall, CmdLogout, CmdSendDTMF, CmdTransferCall:
			if c.Account == "" {
				t.Fatalf("%s accepted without account: %q", c.Name, msg)
			}
		default:
			t.Fatalf("unknown command %q accepted", c.Name)
		}
	})
}

// FuzzFlatMatchesJSON checks that ParseCommand's scanner path agrees with
// the encoding/json path on every message it accepts, and accepts only valid
// JSON.
func FuzzFlatMatchesJSON(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"get-status","account":"account-1"}`,
		` { "cmd" : "hangup-call" , "account" : "a" , "call_id" : -0 , "decline" : false } `,
		`{"cmd":"answer-call","account":"a","call_id":1.5e+3}`,
		`{"cmd":"ping","token":"x","token":"y","n":null,"t":true}`,
		`{"cmd":"login","account":"a","user":"","pass":"p","server":"127.0.0.1"}`,
		`{"cmd":"make-call","account":"a","num":3002}`,
		`{"cmd":"logout","account":"a",}`,
		`{"cmd":"switch-call","account":"a","call_id":01}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var fields [maxFlatFields]field
		n, ok := scanFlat(msg, &fields)
		if !ok {
			return
		}
		if !json.Valid(msg) {
			t.Fatalf("scanFlat accepted invalid JSON %q", msg)
		}
		got, gotErr := decode(decoder{flat: fields[:n], isFlat: true})
		want, wantErr := parseJSON(msg)
		if !reflect.DeepEqual(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("%q:\nscanner       %+v, %v\nencoding/json %+v, %v", msg, got, gotErr, want, wantErr)
		}
		if gotErr != nil {
			var a, b *CommandError
			errors.As(gotErr, &a)
			errors.As(wantErr, &b)
			if *a != *b {
				t.Fatalf("%q: scanner %+v, encoding/json %+v", msg, *a, *b)
			}
		}
	})
}
