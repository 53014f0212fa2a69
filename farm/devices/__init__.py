"""What times a binary: one device times one binary at a time.

base (Device, DeviceInfo, the Kind entry), host, android, registry (the kinds by name:
adding a kind is one module and one line there), classes (which devices' timings may
train one model), gate (compiles off the cores a host device times on), timing (how a
candidate is timed; the harness beside it in harness/).
May import: machine and the foundation (errors, atomic, paths, faults, candidate).
"""
