"""Named defaults for the ComfyOne SDK: every timeout, retry and reconnect knob lives here."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://pandora-server-cf.onethingai.com"
WS_PATH = "/v1/ws"

ENV_API_KEY = "COMFYONE_API_KEY"
ENV_BASE_URL = "COMFYONE_BASE_URL"
ENV_WS_URL = "COMFYONE_WS_URL"

# (connect, read) seconds. The first SDK used a single 5 s timeout, too short for uploads.
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0

# Retries after the first attempt, for requests that are safe to repeat.
DEFAULT_MAX_RETRIES = 2
RETRY_BACKOFF_BASE = 0.5
RETRY_BACKOFF_CAP = 8.0
# A Retry-After longer than this is clamped: a client should not hang for minutes silently.
RETRY_AFTER_MAX = 60.0
RETRYABLE_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})

# WebSocket: pings detect a dead peer; reconnects back off instead of the old fixed 5 s sleep.
WS_PING_INTERVAL = 20.0
WS_PING_TIMEOUT = 10.0
WS_RECONNECT_BASE = 0.5
WS_RECONNECT_CAP = 30.0

# prompts.run()
DEFAULT_RUN_TIMEOUT = 600.0
DEFAULT_POLL_INTERVAL = 1.0
# While the socket is healthy, run() still checks the status this often in case a frame is lost.
RUN_SAFETY_POLL_INTERVAL = 5.0

USER_AGENT = "comfyone-sdk-python/0.1.0"
