package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sp(s string) *string { return &s }

func TestParseCommandValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Command
	}{
		{name: "login all", in: `{"cmd":"login","account":"account-3","user":"3003","pass":"sip3003","server":"127.0.0.1"}`,
			want: Command{Name: "login", Account: "account-3", User: sp("3003"), Pass: sp("sip3003"), Server: sp("127.0.0.1")}},
		{name: "login only account", in: `{"cmd":"login","account":"a"}`, want: Command{Name: "login", Account: "a"}},
		{name: "login empty pass kept", in: `{"cmd":"login","account":"a","pass":""}`, want: Command{Name: "login", Account: "a", Pass: sp("")}},
		{name: "make-call", in: `{"cmd":"make-call","account":"account-1","num":"3002"}`, want: Command{Name: "make-call", Account: "account-1", Num: "3002"}},
		{name: "make-call uri", in: `{"cmd":"make-call","account":"a","num":"sip:3002@127.0.0.1"}`, want: Command{Name: "make-call", Account: "a", Num: "sip:3002@127.0.0.1"}},
		{name: "answer-call", in: `{"cmd":"answer-call","account":"account-1","call_id":0}`, want: Command{Name: "answer-call", Account: "account-1"}},
		{name: "switch-call", in: `{"cmd":"switch-call","account":"a","call_id":1}`, want: Command{Name: "switch-call", Account: "a", CallID: 1}},
		{name: "call_id with spaces", in: `{ "cmd" : "switch-call" , "account" : "a" , "call_id" : 12 }`, want: Command{Name: "switch-call", Account: "a", CallID: 12}},
		{name: "hangup", in: `{"cmd":"hangup-call","account":"a","call_id":3}`, want: Command{Name: "hangup-call", Account: "a", CallID: 3}},
		{name: "hangup decline", in: `{"cmd":"hangup-call","account":"a","call_id":3,"decline":true}`, want: Command{Name: "hangup-call", Account: "a", CallID: 3, Decline: true}},
		{name: "hangup decline false", in: `{"cmd":"hangup-call","account":"a","call_id":3,"decline":false}`, want: Command{Name: "hangup-call", Account: "a", CallID: 3}},
		{name: "logout", in: `{"cmd":"logout","account":"account-3"}`, want: Command{Name: "logout", Account: "account-3"}},
		{name: "get-status", in: `{"cmd":"get-status","account":"account-1"}`, want: Command{Name: "get-status", Account: "account-1"}},
		{name: "get-status all", in: `{"cmd":"get-status"}`, want: Command{Name: "get-status"}},
		{name: "get-status empty account", in: `{"cmd":"get-status","account":""}`, want: Command{Name: "get-status"}},
		{name: "ping", in: `{"cmd":"ping","token":"t1"}`, want: Command{Name: "ping", Token: "t1"}},
		{name: "send-dtmf", in: `{"cmd":"send-dtmf","account":"a","call_id":2,"digits":"12#"}`, want: Command{Name: "send-dtmf", Account: "a", CallID: 2, Digits: "12#"}},
		{name: "send-dtmf duration", in: `{"cmd":"send-dtmf","account":"a","call_id":2,"digits":"1,2","duration_ms":250}`,
			want: Command{Name: "send-dtmf", Account: "a", CallID: 2, Digits: "1,2", DurationMs: 250}},
		{name: "transfer-call", in: `{"cmd":"transfer-call","account":"a","call_id":4,"num":"3003"}`, want: Command{Name: "transfer-call", Account: "a", CallID: 4, Num: "3003"}},
		{name: "unknown fields ignored", in: `{"cmd":"logout","account":"a","id":"req-1","x":[1,2]}`, want: Command{Name: "logout", Account: "a"}},
		{name: "unicode account", in: `{"cmd":"logout","account":"compte-\u00e9t\u00e9"}`, want: Command{Name: "logout", Account: "compte-été"}},
		{name: "negative call_id passes to controller", in: `{"cmd":"answer-call","account":"a","call_id":-1}`, want: Command{Name: "answer-call", Account: "a", CallID: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseCommand: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		wantCmd     string
		wantAccount string
		wantMsg     string
	}{
		// The vendor document's first example, with its missing comma.
		{name: "spec example without comma", in: "{\n  \"cmd\": \"make-call\",\n  \"account\": \"account-1\"\n  \"num\": \"3002\"\n}",
			wantMsg: `invalid JSON at byte 52: invalid character '"' after object key:value pair`},
		{name: "garbage", in: `hello`, wantMsg: `invalid JSON at byte 1: invalid character 'h' looking for beginning of value`},
		{name: "truncated", in: `{"cmd":"get-status"`, wantMsg: `invalid JSON at byte 19: unexpected end of JSON input`},
		{name: "trailing data", in: `{"cmd":"get-status"}{}`, wantMsg: `invalid JSON at byte 21: invalid character '{' after top-level value`},
		{name: "array", in: `[1,2]`, wantMsg: `message must be a JSON object, not an array`},
		{name: "string", in: `"get-status"`, wantMsg: `message must be a JSON object, not a string`},
		{name: "number", in: `42`, wantMsg: `message must be a JSON object, not a number`},
		{name: "bool", in: `true`, wantMsg: `message must be a JSON object, not a boolean`},
		{name: "null", in: `null`, wantMsg: `message must be a JSON object, not null`},
		{name: "invalid UTF-8", in: "{\"cmd\":\"logout\",\"account\":\"a\xff\"}", wantMsg: `invalid UTF-8 at byte 29: messages must be UTF-8 JSON`},
		{name: "missing cmd", in: `{"account":"a"}`, wantMsg: `missing field "cmd"`},
		{name: "cmd number", in: `{"cmd":1}`, wantMsg: `field "cmd" must be a string`},
		{name: "cmd null", in: `{"cmd":null}`, wantMsg: `field "cmd" must be a string`},
		{name: "unknown cmd", in: `{"cmd":"dial","account":"a"}`, wantCmd: "dial", wantAccount: "a",
			wantMsg: `unknown command "dial": use login, make-call, answer-call, switch-call, get-status, hangup-call, logout, ping, reload, resume, log-level, send-dtmf, transfer-call, trace or sip-trace`},
		{name: "send-dtmf no digits", in: `{"cmd":"send-dtmf","account":"a","call_id":1}`, wantCmd: "send-dtmf", wantAccount: "a",
			wantMsg: `send-dtmf: missing field "digits"`},
		{name: "send-dtmf empty digits", in: `{"cmd":"send-dtmf","account":"a","call_id":1,"digits":""}`, wantCmd: "send-dtmf", wantAccount: "a",
			wantMsg: `send-dtmf: field "digits" must not be empty`},
		{name: "send-dtmf duration string", in: `{"cmd":"send-dtmf","account":"a","call_id":1,"digits":"1","duration_ms":"100"}`, wantCmd: "send-dtmf", wantAccount: "a",
			wantMsg: `send-dtmf: field "duration_ms" must be an integer from 40 to 5000`},
		{name: "send-dtmf duration too short", in: `{"cmd":"send-dtmf","account":"a","call_id":1,"digits":"1","duration_ms":10}`, wantCmd: "send-dtmf", wantAccount: "a",
			wantMsg: `send-dtmf: field "duration_ms" must be an integer from 40 to 5000`},
		{name: "transfer-call no num", in: `{"cmd":"transfer-call","account":"a","call_id":1}`, wantCmd: "transfer-call", wantAccount: "a",
			wantMsg: `transfer-call: missing field "num"`},
		{name: "transfer-call no call_id", in: `{"cmd":"transfer-call","account":"a","num":"3"}`, wantCmd: "transfer-call", wantAccount: "a",
			wantMsg: `transfer-call: missing field "call_id"`},
		{name: "empty cmd", in: `{"cmd":""}`,
			wantMsg: `unknown command "": use login, make-call, answer-call, switch-call, get-status, hangup-call, logout, ping, reload, resume, log-level, send-dtmf, transfer-call, trace or sip-trace`},
	}
	// Every required and typed field of every command.
	type field struct{ name, json, wantMsg string }
	for _, c := range []struct {
		cmd    string
		valid  map[string]string // field -> valid JSON value
		checks []field           // field set to json ("" = removed)
	}{
		{cmd: "login", valid: map[string]string{"account": `"a"`}, checks: []field{
			{"account", "", `login: missing field "account"`},
			{"account", `""`, `login: field "account" must not be empty`},
			{"account", `3`, `login: field "account" must be a string`},
			{"user", `3003`, `login: field "user" must be a string`},
			{"pass", `null`, `login: field "pass" must be a string`},
			{"server", `["127.0.0.1"]`, `login: field "server" must be a string`},
		}},
		{cmd: "make-call", valid: map[string]string{"account": `"a"`, "num": `"3002"`}, checks: []field{
			{"account", "", `make-call: missing field "account"`},
			{"account", `""`, `make-call: field "account" must not be empty`},
			{"account", `{}`, `make-call: field "account" must be a string`},
			{"num", "", `make-call: missing field "num"`},
			{"num", `3002`, `make-call: field "num" must be a string`},
		}},
		{cmd: "answer-call", valid: map[string]string{"account": `"a"`, "call_id": `0`}, checks: []field{
			{"account", "", `answer-call: missing field "account"`},
			{"account", `""`, `answer-call: field "account" must not be empty`},
			{"account", `true`, `answer-call: field "account" must be a string`},
			{"call_id", "", `answer-call: missing field "call_id"`},
			{"call_id", `"3"`, `answer-call: field "call_id" must be an integer`},
			{"call_id", `3.5`, `answer-call: field "call_id" must be an integer`},
			{"call_id", `3e0`, `answer-call: field "call_id" must be an integer`},
			{"call_id", `null`, `answer-call: field "call_id" must be an integer`},
			{"call_id", `99999999999999999999`, `answer-call: field "call_id" is out of range`},
		}},
		{cmd: "switch-call", valid: map[string]string{"account": `"a"`, "call_id": `1`}, checks: []field{
			{"account", "", `switch-call: missing field "account"`},
			{"account", `""`, `switch-call: field "account" must not be empty`},
			{"call_id", "", `switch-call: missing field "call_id"`},
			{"call_id", `"1"`, `switch-call: field "call_id" must be an integer`},
			{"call_id", `[1]`, `switch-call: field "call_id" must be an integer`},
		}},
		{cmd: "hangup-call", valid: map[string]string{"account": `"a"`, "call_id": `1`}, checks: []field{
			{"account", "", `hangup-call: missing field "account"`},
			{"account", `""`, `hangup-call: field "account" must not be empty`},
			{"account", `1`, `hangup-call: field "account" must be a string`},
			{"call_id", "", `hangup-call: missing field "call_id"`},
			{"call_id", `"1"`, `hangup-call: field "call_id" must be an integer`},
			{"call_id", `1.0`, `hangup-call: field "call_id" must be an integer`},
			{"decline", `"yes"`, `hangup-call: field "decline" must be true or false`},
			{"decline", `1`, `hangup-call: field "decline" must be true or false`},
		}},
		{cmd: "logout", valid: map[string]string{"account": `"a"`}, checks: []field{
			{"account", "", `logout: missing field "account"`},
			{"account", `""`, `logout: field "account" must not be empty`},
			{"account", `null`, `logout: field "account" must be a string`},
		}},
		{cmd: "get-status", valid: map[string]string{}, checks: []field{
			{"account", `5`, `get-status: field "account" must be a string`},
		}},
		{cmd: "ping", valid: map[string]string{}, checks: []field{
			{"token", `5`, `ping: field "token" must be a string`},
		}},
	} {
		for _, f := range c.checks {
			fields := map[string]string{}
			for k, v := range c.valid {
				fields[k] = v
			}
			if f.json == "" {
				delete(fields, f.name)
			} else {
				fields[f.name] = f.json
			}
			parts := []string{`"cmd":"` + c.cmd + `"`}
			for _, k := range []string{"account", "num", "call_id", "user", "pass", "server", "decline", "token"} {
				if v, ok := fields[k]; ok {
					parts = append(parts, `"`+k+`":`+v)
				}
			}
			acct := ""
			if fields["account"] == `"a"` {
				acct = "a"
			}
			desc := "removed"
			if f.json != "" {
				desc = f.json
			}
			tests = append(tests, struct {
				name        string
				in          string
				wantCmd     string
				wantAccount string
				wantMsg     string
			}{name: c.cmd + " " + f.name + " " + desc, in: "{" + strings.Join(parts, ",") + "}", wantCmd: c.cmd, wantAccount: acct, wantMsg: f.wantMsg})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCommand([]byte(tt.in))
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *CommandError", err, err)
			}
			if ce.Msg != tt.wantMsg || ce.Cmd != tt.wantCmd || ce.Account != tt.wantAccount {
				t.Fatalf("got cmd=%q account=%q msg=%q\nwant cmd=%q account=%q msg=%q", ce.Cmd, ce.Account, ce.Msg, tt.wantCmd, tt.wantAccount, tt.wantMsg)
			}
		})
	}
}
