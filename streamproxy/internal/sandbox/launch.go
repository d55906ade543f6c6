package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// errNoLandlock is what the launcher says on a kernel that applies no domain.
var errNoLandlock = errors.New("the kernel has no Landlock (Linux 5.13 or later with landlock in CONFIG_LSM or lsm=)")

// newestABI is the newest Landlock ABI go-landlock knows: a newer kernel is used at this level.
const newestABI = 11

// Launch is the launcher: args are what follows LaunchArg, the policy and the server's command line. It restricts
// the process to the policy and executes the server, which keeps the domain; it returns only on failure, and the
// child then never runs unconfined.
func Launch(args []string) error {
	if len(args) == 0 {
		return errors.New("sandbox launcher: no policy")
	}
	var p Policy
	if err := json.Unmarshal([]byte(args[0]), &p); err != nil {
		return fmt.Errorf("sandbox launcher: policy: %w", err)
	}
	command := args[1:]
	if !p.Probe && len(command) == 0 {
		return errors.New("sandbox launcher: no command")
	}
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		return errNoLandlock
	}
	if err := restrict(p); err != nil {
		return fmt.Errorf("sandbox launcher: %w", err)
	}
	if p.Probe {
		fmt.Println(min(abi, newestABI))
		return nil
	}
	err = syscall.Exec(command[0], command, os.Environ())
	return fmt.Errorf("sandbox launcher: exec %s: %w", command[0], err)
}

func restrict(p Policy) error {
	cfg := landlock.V11
	// TCP only: UDP (name lookups) stays open. No TCP port may be bound, so a server listens on none.
	cfg.HandledAccessNet = ll.AccessNetBindTCP
	var rules []landlock.Rule
	if p.ConnectOnly {
		cfg.HandledAccessNet |= ll.AccessNetConnectTCP
		for _, port := range p.Connect {
			rules = append(rules, landlock.ConnectTCP(port))
		}
	}
	for _, path := range p.Read {
		if r, ok := pathRule(path, false); ok {
			rules = append(rules, r)
		}
	}
	for _, path := range append(p.Write, "/dev/null", "/dev/zero", "/dev/full") {
		if r, ok := pathRule(path, true); ok {
			rules = append(rules, r)
		}
	}
	// Denials after exec go to the audit log (ABI 7 and later), where an operator finds what a server missed.
	return cfg.BestEffort().EnableLoggingForSubprocesses().Restrict(rules...)
}

// pathRule allows reading (and executing), or reading and writing, beneath path: a directory's rights for a
// directory, a file's for anything else, ioctl on a device. A path that does not exist gets no rule.
func pathRule(path string, write bool) (landlock.Rule, bool) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, false
	}
	var r landlock.FSRule
	switch {
	case info.IsDir() && write:
		r = landlock.RWDirs(path)
	case info.IsDir():
		r = landlock.RODirs(path)
	case write:
		r = landlock.RWFiles(path)
	default:
		r = landlock.ROFiles(path)
	}
	if info.Mode()&os.ModeDevice != 0 {
		r = r.WithIoctlDev()
	}
	return r.IgnoreIfMissing(), true
}
