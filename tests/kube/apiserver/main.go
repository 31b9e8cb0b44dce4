// Command kube-apiserver is the upstream Kubernetes API server, linked from the
// k8s.io/kubernetes module so the test suite can run a real one without a cluster.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
