"""What routeway tells the operator and each account about its requests: request ids and trace context
(ids.py), OpenTelemetry traces (tracing.py, imported only when traces are on), JSON request logs
(logs.py) and per-account exports (broadcast.py)."""
