"""core/v1 PersistentVolume, storage.k8s.io/v1 StorageClass and CSIStorageCapacity (the PersistentVolumeClaim is in apps_sets.py)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_SOURCE = ("object", "A volume source of this type (not mounted by shipmate's agent).")

STORAGE: dict[str, Definition] = {
    "core.PersistentVolume": Definition(
        "A piece of storage provisioned by an administrator or by a provisioner for a claim. Cluster-scoped.",
        kind_fields(("core.PersistentVolumeSpec", "What the volume is and how it is reclaimed."),
                    ("core.PersistentVolumeStatus", "Current state of the volume. Read-only."))),
    "core.PersistentVolumeSpec": Definition("A volume's source, size, access and binding.", {
        "capacity": ("map[string]Quantity", "The size of the volume (`storage`)."),
        "accessModes": ("[]string", "ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod."),
        "claimRef": ("core.ObjectReference", "The claim bound to this volume (or the one it is reserved for)."),
        "persistentVolumeReclaimPolicy": ("string", "What happens once the claim is deleted: Retain (default for "
                                                    "volumes made by hand), Delete (default for provisioned "
                                                    "ones) or Recycle (deprecated)."),
        "storageClassName": ("string", "The StorageClass of the volume; empty: no class."),
        "mountOptions": ("[]string", "Mount options (not checked)."),
        "volumeMode": ("string", "Filesystem (default) or Block."),
        "nodeAffinity": ("core.VolumeNodeAffinity", "The nodes the volume can be used from; pods using it are "
                                                    "scheduled there."),
        "volumeAttributesClassName": ("string", "The VolumeAttributesClass of the volume."),
        "hostPath": ("core.HostPathVolumeSource", "A directory on the node's filesystem."),
        "local": ("core.LocalVolumeSource", "A local disk, partition or directory of one node (needs "
                                            "nodeAffinity)."),
        **{name: _SOURCE for name in (
            "gcePersistentDisk", "awsElasticBlockStore", "glusterfs", "nfs", "rbd", "iscsi", "cinder", "cephfs",
            "fc", "flocker", "flexVolume", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
            "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos", "csi")},
    }),
    "core.HostPathVolumeSource": Definition("A file or directory on the host.", {
        "path": ("string", "Absolute path on the node."),
        "type": ("string", "What must be there: \"\" (no check), DirectoryOrCreate, Directory, FileOrCreate, File, "
                           "Socket, CharDevice or BlockDevice."),
    }, required=("path",)),
    "core.LocalVolumeSource": Definition("A local storage device of one node.", {
        "path": ("string", "Absolute path of the directory or device on the node."),
        "fsType": ("string", "Filesystem type of a block device."),
    }, required=("path",)),
    "core.VolumeNodeAffinity": Definition("The nodes a volume can be reached from.", {
        "required": ("core.NodeSelector", "The nodes; required."),
    }),
    "core.NodeSelector": Definition("Node selector terms: a node matching any term is selected.", {
        "nodeSelectorTerms": ("[]core.NodeSelectorTerm", "The terms (ORed)."),
    }, required=("nodeSelectorTerms",)),
    "core.NodeSelectorTerm": Definition("Requirements a node meets all of.", {
        "matchExpressions": ("[]core.NodeSelectorRequirement", "Requirements on node labels."),
        "matchFields": ("[]core.NodeSelectorRequirement", "Requirements on node fields (metadata.name)."),
    }),
    "core.NodeSelectorRequirement": Definition("A key, an operator and values.", {
        "key": ("string", "The label or field."),
        "operator": ("string", "In, NotIn, Exists, DoesNotExist, Gt or Lt."),
        "values": ("[]string", "The values (one for Gt/Lt, none for Exists/DoesNotExist)."),
    }, required=("key", "operator")),
    "core.PersistentVolumeStatus": Definition("Observed state of a volume.", {
        "phase": ("string", "Pending (not usable yet: a local-path volume whose node has not made its directory), "
                            "Available, Bound, Released (its claim is gone) or Failed (reclaiming failed)."),
        "message": ("string", "Why the volume is in this phase."),
        "reason": ("string", "A CamelCase reason for a failure."),
        "lastPhaseTransitionTime": ("Time", "When the phase last changed."),
    }),
    "storage.StorageClass": Definition(
        "A class of storage: which provisioner makes volumes for claims naming it, with which parameters, and "
        "how they are bound and reclaimed. Cluster-scoped. The class annotated "
        "`storageclass.kubernetes.io/is-default-class: \"true\"` is given to claims that name none.",
        kind_fields(
            provisioner=("string", "The provisioner of the class's volumes (shipmate.io/local-path: directories "
                                   "on the node the pod lands on; kubernetes.io/no-provisioner: volumes made by "
                                   "hand). Immutable."),
            parameters=("map[string]string", "Parameters for the provisioner. Immutable."),
            reclaimPolicy=("string", "Reclaim policy of the provisioned volumes: Delete (default) or Retain. "
                                     "Immutable."),
            mountOptions=("[]string", "Mount options of the provisioned volumes."),
            allowVolumeExpansion=("boolean", "Whether claims of the class may grow."),
            volumeBindingMode=("string", "Immediate (default): bind or provision at once; WaitForFirstConsumer: "
                                         "wait for a pod using the claim to be scheduled, then provision on its "
                                         "node. Immutable."),
            allowedTopologies=("[]core.TopologySelectorTerm", "Where volumes may be provisioned."),
        ), required=("provisioner",)),
    "storage.CSIStorageCapacity": Definition(
        "The capacity a CSI driver reported (one GetCapacity call) for one StorageClass in one topology segment, "
        "for schedulers placing volumes. Namespaced; the name has no meaning of its own (a DNS subdomain, e.g. "
        "csisc-<uuid>). No object, an unset capacity and a zero capacity all mean: no capacity there.",
        kind_fields(
            nodeTopology=("meta.LabelSelector", "The nodes that can reach the storage: unset, none; empty, all "
                                                "nodes. Immutable."),
            storageClassName=("string", "The StorageClass the capacity applies to (a DNS subdomain, as a class's "
                                        "name). Once the class is gone the object is obsolete. Immutable."),
            capacity=("Quantity", "Capacity available for new volumes, in bytes, as the driver reported it; "
                                  "unset: unknown. Not negative."),
            maximumVolumeSize=("Quantity", "The largest volume the driver can make here (CSI 1.4 and later); "
                                           "compared with a claim's storage request before capacity."),
        ), required=("storageClassName",)),
    "core.TopologySelectorTerm": Definition("Topology requirements (ANDed).", {
        "matchLabelExpressions": ("[]core.TopologySelectorLabelRequirement", "Label requirements."),
    }),
    "core.TopologySelectorLabelRequirement": Definition("A label and the values it may have.", {
        "key": ("string", "The label."),
        "values": ("[]string", "The values."),
    }, required=("key", "values")),
}
