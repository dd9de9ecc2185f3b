// Command kube-network-policies enforces NetworkPolicies on the test cluster's
// node with the policy engine of sigs.k8s.io/kube-network-policies.
//
// The upstream command runs as a DaemonSet pod (in-cluster credentials) and
// hooks the kernel with an nftables `queue` rule. The test cluster runs its
// components as host processes with kubeconfigs, and the kernels of the
// project's machines lack nftables' queue expression (CONFIG_NFT_QUEUE), so
// this command takes a kubeconfig, and tests/cluster/up.sh sends the first
// packet of each pod connection to the same netfilter queue with the iptables
// NFQUEUE target instead. The controller's own nftables rules then fail to
// load; that is expected, logged, and harmless.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster (required)")
	nodeName := flag.String("node-name", "", "name of the Node whose pods this enforces for (required)")
	queueID := flag.Int("nfqueue-id", 100, "netfilter queue the iptables NFQUEUE rules send packets to")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *nodeName == "" {
		fmt.Fprintln(os.Stderr, "kube-network-policies: --kubeconfig and --node-name are required")
		os.Exit(2)
	}
	if err := run(*kubeconfig, *nodeName, *queueID); err != nil {
		fmt.Fprintf(os.Stderr, "kube-network-policies: %v\n", err)
		os.Exit(1)
	}
}

func run(kubeconfig, nodeName string, queueID int) error {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading %s: %w", kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("creating the client: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	factory := informers.NewSharedInformerFactory(client, 0)
	controller, err := networkpolicy.NewController(
		client,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil, // no (Baseline)AdminNetworkPolicy: plain NetworkPolicies only
		networkpolicy.Config{
			QueueID:  queueID,
			NodeName: nodeName,
			// The test cluster's containerd serves no NRI socket, so pod
			// addresses come from the API server alone. NRI stays "enabled"
			// all the same: with it disabled, v0.8.0 dereferences a nil NRI
			// client for every address that is no pod's (the API server's,
			// the host's).
			NRIdisabled: false,
			// Kernels 6.12 and later have the conntrack fix this works around.
			NetfilterBug1766Fix: false,
		},
	)
	if err != nil {
		return fmt.Errorf("creating the controller: %w", err)
	}
	factory.Start(ctx.Done())
	// Run returns when ctx ends, or at once when it cannot open the queue.
	if err := controller.Run(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("running the controller: %w", err)
	}
	return nil
}
