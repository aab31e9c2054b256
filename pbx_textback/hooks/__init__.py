"""Outbound webhooks (README "Webhooks"): a feed turns stored calls, texts, consent,
conversation and callback changes into events; a durable queue delivers them signed per
Standard Webhooks and retries on the spec's schedule."""
