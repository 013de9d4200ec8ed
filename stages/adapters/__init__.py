"""Adapters that run another library's steps inside a thresher pipeline (datatrove)."""
