"""Bounds of exec/attach streams, shared by the API server's pod proxy and the agent's node server.

A remote command message carries one chunk of stdin/stdout/stderr (kubectl and the CRI streaming server
write at most 32 KiB at a time) or a resize/status JSON, so 1 MiB leaves ample room; larger messages close
the stream instead of being buffered. WebSocket compression (permessage-deflate) is not negotiated: a
small compressed message could otherwise inflate into a large one."""
MAX_STREAM_MESSAGE_BYTES = 1024 * 1024
