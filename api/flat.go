package api

// maxFlatFields is the most fields scanFlat accepts; a command has at most
// five, and a longer object takes the encoding/json path.
const maxFlatFields = 8

// field is one member of a flat JSON object: the key without its quotes,
// the value as raw JSON (a json.RawMessage).
type field struct {
	key, val []byte
}

// scanFlat splits msg into fields if it is a JSON object whose values are
// strings, numbers, true, false or null, and whose keys and strings are
// printable ASCII without escapes. ok is false for anything else, valid or
// not: the caller then uses encoding/json. It never accepts invalid JSON.
func scanFlat(msg []byte, fields *[maxFlatFields]field) (n int, ok bool) {
	i := skipWS(msg, 0)
	if i >= len(msg) || msg[i] != '{' {
		return 0, false
	}
	i = skipWS(msg, i+1)
	if i < len(msg) && msg[i] == '}' {
		return 0, skipWS(msg, i+1) == len(msg)
	}
	for {
		if n == maxFlatFields {
			return 0, false
		}
		end, ok := scanPlainString(msg, i)
		if !ok {
			return 0, false
		}
		key := msg[i+1 : end-1]
		i = skipWS(msg, end)
		if i >= len(msg) || msg[i] != ':' {
			return 0, false
		}
		i = skipWS(msg, i+1)
		if end, ok = scanScalar(msg, i); !ok {
			return 0, false
		}
		fields[n] = field{key: key, val: msg[i:end]}
		n++
		i = skipWS(msg, end)
		if i >= len(msg) {
			return 0, false
		}
		switch msg[i] {
		case ',':
			i = skipWS(msg, i+1)
		case '}':
			return n, skipWS(msg, i+1) == len(msg)
		default:
			return 0, false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanPlainString returns the index after the string starting at b[i] if it
// holds only printable ASCII and no escape.
func scanPlainString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return 0, false
		}
	}
	return 0, false
}

// scanScalar returns the index after the string, number or literal at b[i].
func scanScalar(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return scanPlainString(b, i)
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	}
	return scanNumber(b, i)
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanNumber follows the JSON grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}
