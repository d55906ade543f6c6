// Package sandbox confines each MCP server process with Landlock, the Linux kernel's unprivileged access control: a
// child may read and execute what a server needs to run (its command, its interpreter and packages, the system's
// libraries, certificates and name service files), write only beneath its working directory and the paths that
// belong to its user, bind no TCP port, connect only to the TCP ports allowed, and reach no process outside its own
// domain (no ptrace, no /proc/<pid>/environ or mem of the proxy or of another user's process, no signals to them).
//
// Go cannot run code between fork and exec, so a child starts as the proxy's own executable with LaunchArg first: the
// launcher restricts itself with the policy it was given and then executes the server, which inherits the domain
// (Launch). At start-up Setup runs the launcher once to learn whether the kernel applies a domain at all, and which
// Landlock ABI.
package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// LaunchArg is the hidden first argument that makes the proxy's executable the launcher of a confined child.
const LaunchArg = "__streamproxy_sandbox_launch"

// Modes of --sandbox.
const (
	ModeAuto     = "auto"     // confine children where the kernel can; run them unconfined, said at start, where not
	ModeRequired = "required" // refuse to start without a Landlock domain
	ModeOff      = "off"
)

// Config is what the operator asked for.
type Config struct {
	Mode         string
	AllowRead    []string // read and execute beneath these, besides what the command needs
	AllowWrite   []string // read and write beneath these, for every user's process
	AllowConnect []string // TCP ports children may connect to; empty: any; "none": no port
}

// Status says whether children are confined, for the start-up line, /health and the metric.
type Status struct {
	ABI    int    `json:"landlockABI"`      // the Landlock ABI applied to each child; 0: none
	Reason string `json:"reason,omitempty"` // why none, when ABI is 0
}

// Sandbox wraps children's command lines in the launcher. A nil *Sandbox wraps nothing.
type Sandbox struct {
	launcher string // the proxy's executable
	read     []string
	write    []string
	connect  []uint16
	limitTCP bool // connect is the whole list of ports children may connect to
}

// Policy is what the launcher applies: paths beneath which reading (and executing), or reading and writing, is
// allowed; TCP ports a child may connect to when ConnectOnly is set. Anything else is denied.
type Policy struct {
	Read        []string `json:"read,omitempty"`
	Write       []string `json:"write,omitempty"`
	Connect     []uint16 `json:"connect,omitempty"`
	ConnectOnly bool     `json:"connectOnly,omitempty"`
	// Probe makes the launcher apply the policy and print the ABI it applied instead of executing a command.
	Probe bool `json:"probe,omitempty"`
}

// Setup checks the configuration against the kernel, by running the launcher once, and returns the sandbox for
// command, or nil when children run unconfined (mode off, or auto on a kernel without Landlock).
func Setup(cfg Config, command []string) (*Sandbox, Status, error) {
	switch cfg.Mode {
	case ModeOff:
		return nil, Status{Reason: "turned off (--sandbox off)"}, nil
	case ModeAuto, ModeRequired:
	default:
		return nil, Status{}, fmt.Errorf("--sandbox %q: want auto, required or off", cfg.Mode)
	}
	allowRead, err := allowed("--sandbox-allow-read", cfg.AllowRead)
	if err != nil {
		return nil, Status{}, err
	}
	allowWrite, err := allowed("--sandbox-allow-write", cfg.AllowWrite)
	if err != nil {
		return nil, Status{}, err
	}
	s := &Sandbox{read: append(systemRead(), allowRead...), write: allowWrite}
	if err := s.setConnect(cfg.AllowConnect); err != nil {
		return nil, Status{}, err
	}
	read, err := commandRead(command)
	if err != nil {
		return nil, Status{}, err
	}
	s.read = append(s.read, read...)
	self, err := os.Executable()
	if err != nil {
		return nil, Status{}, fmt.Errorf("sandbox: the proxy's own executable, which launches children: %w", err)
	}
	s.launcher = self
	abi, err := s.probe()
	if err != nil || abi == 0 {
		reason := "the kernel applies no Landlock domain"
		if err != nil {
			reason = err.Error()
		}
		if cfg.Mode == ModeRequired {
			return nil, Status{}, fmt.Errorf("--sandbox required: %s", reason)
		}
		return nil, Status{Reason: reason}, nil
	}
	return s, Status{ABI: abi}, nil
}

// allowed makes the operator's paths absolute (children start elsewhere) and refuses one that does not exist, which
// no rule could name.
func allowed(flag string, paths []string) ([]string, error) {
	var abs []string
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err == nil {
			_, err = os.Stat(a)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", flag, p, err)
		}
		abs = append(abs, a)
	}
	return abs, nil
}

func (s *Sandbox) setConnect(ports []string) error {
	if len(ports) == 0 {
		return nil
	}
	s.limitTCP = true
	if len(ports) == 1 && ports[0] == "none" {
		return nil
	}
	for _, p := range ports {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("--sandbox-allow-connect %q: want TCP port numbers (1-65535), or none", p)
		}
		s.connect = append(s.connect, uint16(n))
	}
	return nil
}

// probe runs the launcher with the children's policy and no command: it says which ABI it applied.
func (s *Sandbox) probe() (int, error) {
	p := s.policy("", nil)
	p.Probe = true
	path, args, err := s.wrapPolicy(p, nil)
	if err != nil {
		return 0, err
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("the launcher failed: %s (%w)", bytes.TrimSpace(out), err)
	}
	abi, err := strconv.Atoi(string(bytes.TrimSpace(out)))
	if err != nil {
		return 0, fmt.Errorf("the launcher answered %q", out)
	}
	return abi, nil
}

// Wrap returns the command line that starts the MCP server confined: read and execute where every child may,
// write beneath dir (its working directory, when set) and the user's paths.
func (s *Sandbox) Wrap(path string, args []string, dir string, userPaths []string) (string, []string, error) {
	if s == nil {
		return path, args, nil
	}
	// The launcher executes the server by an absolute path: resolve it here as exec would for an unconfined child,
	// with the proxy's PATH, and a relative path with a separator relative to the child's directory.
	if dir != "" && !filepath.IsAbs(path) && strings.ContainsRune(path, filepath.Separator) {
		path = filepath.Join(dir, path)
	}
	resolved, err := exec.LookPath(path)
	if err != nil {
		return "", nil, fmt.Errorf("MCP server command %q: %w", path, err)
	}
	if !filepath.IsAbs(resolved) {
		if resolved, err = filepath.Abs(resolved); err != nil {
			return "", nil, err
		}
	}
	return s.wrapPolicy(s.policy(dir, userPaths), append([]string{resolved}, args...))
}

func (s *Sandbox) policy(dir string, userPaths []string) Policy {
	write := append([]string(nil), s.write...)
	if dir != "" {
		write = append(write, dir)
	}
	write = append(write, userPaths...)
	return Policy{Read: s.read, Write: write, Connect: s.connect, ConnectOnly: s.limitTCP}
}

func (s *Sandbox) wrapPolicy(p Policy, command []string) (string, []string, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox policy: %w", err)
	}
	return s.launcher, append([]string{LaunchArg, string(raw)}, command...), nil
}

// systemRead is what any server needs to read: programs and libraries, certificates and the name service's files,
// a few devices, and its own /proc entry (the launcher's, resolved before it executes the server under the same
// pid). Missing paths are skipped by the launcher.
func systemRead() []string {
	return []string{
		"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
		"/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives", "/etc/ld.so.conf.d",
		"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf",
		"/etc/host.conf", "/etc/gai.conf", "/etc/localtime", "/etc/timezone", "/etc/passwd", "/etc/group",
		"/etc/mime.types", "/etc/os-release",
		"/dev/urandom", "/dev/random",
		"/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg", "/sys/devices/system/cpu",
		"/sys/fs/cgroup",
	}
}

// commandRead is what the command itself needs to read: its executable, the interpreter its script names, and the
// files among its arguments, each with the package around it (the node_modules folder it sits in, or the
// installation whose bin/ holds it), so a Node or Python server finds its dependencies.
func commandRead(command []string) ([]string, error) {
	exe, err := exec.LookPath(command[0])
	if err != nil {
		return nil, fmt.Errorf("MCP server command %q: %w", command[0], err)
	}
	var read []string
	add := func(p string) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if abs, err := filepath.Abs(real); err == nil {
				read = append(read, packageRoot(abs))
			}
		}
	}
	add(exe)
	for _, interp := range interpreters(exe) {
		add(interp)
	}
	for _, arg := range command[1:] {
		if info, err := os.Stat(arg); err == nil && info.Mode().IsRegular() {
			add(arg)
			for _, interp := range interpreters(arg) {
				add(interp)
			}
		}
	}
	return read, nil
}

// interpreters reads a script's "#!" line: the interpreter, and for "#!/usr/bin/env name" the program env finds.
func interpreters(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if !strings.HasPrefix(line, "#!") {
		return nil
	}
	fields := strings.Fields(line[2:])
	if len(fields) == 0 {
		return nil
	}
	found := []string{fields[0]}
	if filepath.Base(fields[0]) == "env" {
		for _, f := range fields[1:] {
			if strings.HasPrefix(f, "-") || strings.Contains(f, "=") {
				continue
			}
			if p, err := exec.LookPath(f); err == nil {
				found = append(found, p)
			}
			break
		}
	}
	return found
}

// packageRoot is the folder a file's program lives in: the outermost node_modules above it, or the installation
// whose bin/ holds it (/opt/node for /opt/node/bin/node, a virtual environment), else the file alone. Never "/".
func packageRoot(file string) string {
	if i := strings.Index(file, "/node_modules/"); i >= 0 {
		return file[:i+len("/node_modules")]
	}
	dir := filepath.Dir(file)
	if filepath.Base(dir) == "bin" {
		if root := filepath.Dir(dir); root != "/" && root != "/usr" {
			return root
		}
	}
	return file
}
