"""The agent's HTTPS node server (kubelet's :10250): logs, exec, attach, health and metrics."""
from agent.node_server.authz import WebhookAuthorizer, subject_access_review_sender
from agent.node_server.metrics import NodeMetrics
from agent.node_server.server import NodeServer, NodeServerConfig

__all__ = ["NodeMetrics", "NodeServer", "NodeServerConfig", "WebhookAuthorizer", "subject_access_review_sender"]
