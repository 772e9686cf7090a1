"""Shared Signals Framework 1.0, CAEP 1.0 and RISC 1.0 (RFC 8417, 8935, 8936, 9493).

The bottom layer: imports nothing of ours. The SET verifier, push and poll endpoints and
the stream-management client live here (see the SSF receiver issue).
"""
