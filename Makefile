# shipmate: `sudo make up` brings up a one-node cluster, `sudo make test` runs every test.
SHELL := /bin/bash

.PHONY: up down test images clean-state

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
