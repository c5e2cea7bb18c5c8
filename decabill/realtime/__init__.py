"""Real-time dashboard status over Socket.IO (wiring generated from spec/asyncapi.yaml)."""
