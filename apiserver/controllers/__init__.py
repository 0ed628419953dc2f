"""Controllers running inside the API server: ReplicaSet, ReplicationController, Deployment, garbage collector."""
