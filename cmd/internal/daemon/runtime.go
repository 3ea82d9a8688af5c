package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// APIAddressFile is the name, in the runtime directory, of the file that
// tells telestra-sipctl where the API listens. It holds no secret and is
// readable by every user, so an operator needs neither root nor the plan
// (which holds the SIP passwords) to find the daemon.
const APIAddressFile = "api-address"

// runtimeDir is the first directory of systemd's $RUNTIME_DIRECTORY
// (RuntimeDirectory=), or "" outside systemd.
func runtimeDir(env string) string {
	dir, _, _ := strings.Cut(env, ":")
	return dir
}

// connectAddr is the address a local client dials to reach a listener on
// addr: a wildcard address becomes 127.0.0.1 (Go listens dual-stack on "::").
func connectAddr(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

// writeAPIAddress writes the API address to dir/api-address (mode 0644
// whatever the umask) by renaming a complete file into place, so a reader
// never sees half of it. It returns the path, to be removed at exit.
func writeAPIAddress(dir string, addr net.Addr) (string, error) {
	path := filepath.Join(dir, APIAddressFile)
	tmp, err := os.CreateTemp(dir, ".api-address-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.WriteString(connectAddr(addr) + "\n")
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
