package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/internal/testenv"
)

// streamproxyTarget runs streamproxy in front of the server, or nil (with a note) when it cannot be built.
func streamproxyTarget(e *env, s *Section) *streamTarget {
	if _, err := os.Stat("streamproxy"); err != nil {
		s.note("streamproxy not measured: there is no streamproxy/ package in this checkout")
		return nil
	}
	bin := testenv.BuildBinary(e, "./streamproxy")
	help, _ := exec.Command(bin, "-help").CombinedOutput()
	listen := "-listen"
	for _, f := range []string{"-listen", "-addr", "-http"} {
		if strings.Contains(string(help), f+" ") || strings.Contains(string(help), f+"=") || strings.Contains(string(help), "-"+f) {
			listen = f
			break
		}
	}
	return &streamTarget{name: "streamproxy", launch: func(e *env, srv mcpServer) *launched {
		return launchHTTP(e, "streamproxy", func(port int) []string {
			return append([]string{bin, listen, "127.0.0.1:" + strconv.Itoa(port), "--"}, srv.argv...)
		})
	}}
}
