"""Mixing: token counts per document and rebalancing toward cluster-size or token-share targets."""
