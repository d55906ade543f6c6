//go:build tools

// Package tools pins the API server command so `go build k8s.io/kubernetes/cmd/kube-apiserver` resolves here.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
