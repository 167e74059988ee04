"""Thin servicers: proto in, one service call (off the event loop), proto out."""
