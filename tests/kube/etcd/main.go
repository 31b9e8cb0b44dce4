// Command etcd is the upstream etcd server, linked from its Go module so the
// test suite can back a real kube-apiserver without any prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
