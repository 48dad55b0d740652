"""Reading what ldce 0.1 wrote: its ``ldce predict`` configs and flags (results folders read them too)."""
