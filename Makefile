# shipmate: `sudo make up` brings up a one-node cluster, `sudo make test` runs every test.
SHELL := /bin/bash

.PHONY: help up down test images clean-state e2e-vagrant bench

help:
	@echo "sudo make up           start containerd, the registry, shipmate server and agent (idempotent)"
	@echo "sudo make down         stop the agent, its pods and the server (data is kept)"
	@echo "sudo make test         make up with the test extras, then run every test"
	@echo "sudo make images       build the offline images and push them to 127.0.0.1:5000"
	@echo "sudo make clean-state  make down, then delete the datastore and the agent's state"
	@echo "make e2e-vagrant       three Debian 12 VMs (Vagrantfile), then tests/e2e/multinode against them"
	@echo "sudo make bench        run every benchmark in bench/ (long), rewrite docs/benchmarks.md and its plots"

up:
	bash hack/up.sh

down:
	bash hack/down.sh

test:
	bash hack/test.sh

# Build the offline images (pause, busybox) and push them to the local registry.
images:
	bash hack/up.sh --images-only

# Stop everything `make up` started and delete the cluster's data (datastore, agent and IPAM state).
clean-state:
	bash hack/down.sh --delete-state

# One server + two agents in Vagrant VMs provisioned with `shipmate install`, then the multi-node
# e2e suite against them (needs vagrant and a provider; not runnable inside this CI machine).
e2e-vagrant:
	bash hack/multinode.sh vagrant-e2e

# Every benchmark in bench/ against the running cluster (make up), then docs/benchmarks.md regenerated
# from bench/results/ (BENCH_ARGS, e.g. "--only density,footprint" or "--no-run", go to bench/report.py).
bench:
	/opt/shipmate/venv/bin/pip install -q --disable-pip-version-check -e ".[bench]"
	/opt/shipmate/venv/bin/python bench/report.py $(BENCH_ARGS)
