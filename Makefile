# shipmate: `sudo make up` brings up a one-node cluster, `sudo make test` runs every test.
SHELL := /bin/bash

.PHONY: help up down test images clean-state purge lock vagrant-box e2e-vagrant bench

help:
	@echo "sudo make up           start containerd, the registry, shipmate server and agent (idempotent)"
	@echo "sudo make down         stop the agent, its pods and the server (data is kept)"
	@echo "sudo make test         make up with the test extras, then run every test (PYTEST_ARGS=--reverse: reversed order)"
	@echo "sudo make images       build the offline images and push them to 127.0.0.1:5000"
	@echo "sudo make clean-state  make down, then delete the datastore and the agent's state"
	@echo "sudo make purge        remove everything shipmate installed or created (a fresh machine again)"
	@echo "make lock              re-resolve requirements.lock (pinned versions + hashes) from pyproject.toml"
	@echo "sudo make vagrant-box  build the offline Debian 12 Vagrant box (cached in /var/cache/shipmate/vagrant)"
	@echo "sudo make e2e-vagrant  three Debian 12 VMs (Vagrantfile), then tests/e2e/multinode against them"
	@echo "sudo make bench        run every benchmark in bench/ (long), rewrite docs/benchmarks.md and its plots"

up:
	bash hack/up.sh

down:
	bash hack/down.sh

test:
	PYTEST_ARGS="$(PYTEST_ARGS)" bash hack/test.sh

# Build the offline images (pause, busybox) and push them to the local registry.
images:
	bash hack/up.sh --images-only

# Stop everything `make up` started and delete the cluster's data (datastore, agent and IPAM state).
clean-state:
	bash hack/down.sh --delete-state

# Stop everything and remove what make up / make test installed or created: the venv, kubectl, the
# registry and its storage, the images pushed to containerd, /etc/shipmate, /var/lib/shipmate, units,
# logs. apt packages stay (other software may use them); so does a user's own registries.yaml.
purge:
	bash hack/purge.sh

# Re-resolve requirements.lock from pyproject.toml (LOCK_UPGRADE=1: take the newest releases).
lock:
	bash hack/lock.sh

# The offline Debian 12 box for the libvirt provider (debootstrap from the apt mirror; rebuilt only
# when hack/vagrant_box.sh or the box's Vagrantfile change), added to Vagrant as shipmate/debian12.
vagrant-box:
	bash hack/vagrant_box.sh

# One server + two agents in Vagrant VMs from that box (libvirt, isolated network), provisioned from
# this host with `shipmate install server|agent`, then tests/e2e/multinode and the VM-only checks
# (tests/vagrant/test_vm_checks.py) against them; the VMs, network and volumes are removed at the end.
e2e-vagrant:
	bash hack/vagrant.sh e2e

# Every benchmark in bench/ against the running cluster (make up), then docs/benchmarks.md regenerated
# from bench/results/ (BENCH_ARGS, e.g. "--only density,footprint" or "--no-run", go to bench/report.py).
bench:
	bash hack/up.sh --images-only
	/opt/shipmate/venv/bin/python bench/report.py $(BENCH_ARGS)
