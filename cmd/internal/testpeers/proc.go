package testpeers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot returns the module root (the folder with go.mod), found by
// walking up from the working directory of the test.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testpeers: getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testpeers: no go.mod above the working directory")
		}
		dir = parent
	}
}

// RequireBinary fails the test when name is not in PATH, naming the Debian
// package that provides it.
func RequireBinary(t testing.TB, name, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testpeers: %s not found in PATH: install the Debian package %q (as root: .ci/deps)", name, debPackage)
	}
	return p
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// runStamp tells the kept logs of one test binary from another's.
var runStamp = time.Now().Format("20060102-150405") + "-" + strconv.Itoa(os.Getpid())

var (
	dirMu  sync.Mutex
	dirSeq = map[string]int{}
)

// LogDir returns a fresh folder for one component of the test. It lives in
// t.TempDir(), or under $TESTPEERS_LOGDIR when set (then it is kept). When
// the test fails, the folder is copied to $TMPDIR/telestra-test-logs/ and
// the tail of every *.log in it is printed.
func LogDir(t testing.TB, component string) string {
	t.Helper()
	test := unsafeName.ReplaceAllString(t.Name(), "_")
	dirMu.Lock()
	dirSeq[test+"/"+component]++
	n := dirSeq[test+"/"+component]
	dirMu.Unlock()
	leaf := fmt.Sprintf("%s-%d", component, n)
	var dir string
	if root := os.Getenv("TESTPEERS_LOGDIR"); root != "" {
		dir = filepath.Join(root, test, leaf)
	} else {
		dir = filepath.Join(t.TempDir(), leaf)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			t.Logf("--- tail of %s ---\n%s", l, tail(l, 40))
		}
		if os.Getenv("TESTPEERS_LOGDIR") != "" {
			t.Logf("logs kept in %s", dir)
			return
		}
		keep := filepath.Join(os.TempDir(), "telestra-test-logs", test+"-"+runStamp, leaf)
		if err := copyTree(dir, keep); err != nil {
			t.Logf("testpeers: keeping logs: %v", err)
			return
		}
		t.Logf("logs kept in %s", keep)
	})
	return dir
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, 0o755)
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return nil // sockets, fifos
	})
}

// proc is a child process in its own process group, with stdout and stderr
// in one log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

func startProc(name, workDir, logPath string, env []string, bin string, args ...string) (*proc, error) {
	return startProcIn(name, workDir, logPath, env, nil, bin, args...)
}

// startProcIn is startProc with stdin read from in (nil: /dev/null).
func startProcIn(name, workDir, logPath string, env []string, in io.Reader, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", name, err)
	}
	if strings.HasSuffix(logPath, ".log") { // not for data files (parec)
		fmt.Fprintf(f, "### %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = in
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process (not its group).
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return errors.New(p.name + ": already exited")
	}
	return p.cmd.Process.Signal(sig)
}

// stop sends SIGTERM and waits up to grace, then kills the process group
// (the children of Kamailio, for instance) and waits again.
func (p *proc) stop(grace time.Duration) error {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.pid())
			}
		}
	}
	return nil
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(bytes.ToValidUTF8(b, []byte("?")))
}
