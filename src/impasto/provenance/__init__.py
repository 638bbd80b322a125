"""Where a picture came from, and making it again.

`record` builds the settings record of a run (inputs by role and SHA-256, weights, device, how the
run went) and writes a result with it; `reproduce` finds a record's inputs again (by path or by
SHA-256), says what differs from the machine that made it, and paints the same picture again;
`settings` reads a record back and checks it is one this impasto can use.
The front ends `impasto info` and `impasto reproduce` are `info_cli` and `reproduce_cli`.
"""

from .record import Provenance, input_roles, run_facts, save_result, weights_file, weights_sha256

__all__ = ["Provenance", "input_roles", "run_facts", "save_result", "weights_file", "weights_sha256"]
