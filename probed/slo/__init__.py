"""SLOs over the ring core: SLIs, error budgets, burn rates, time to exhaustion, kept across restarts."""
