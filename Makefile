# shipmate: `sudo make up` brings up a one-node cluster, `sudo make test` runs every test.
SHELL := /bin/bash

.PHONY: help up down test images clean-state

help:
	@echo "sudo make up           start containerd, the registry, shipmate server and agent (idempotent)"
	@echo "sudo make down         stop the agent, its pods and the server (data is kept)"
	@echo "sudo make test         make up with the test extras, then run every test"
	@echo "sudo make images       build the offline images and push them to 127.0.0.1:5000"
	@echo "sudo make clean-state  make down, then delete the datastore and the agent's state"

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
