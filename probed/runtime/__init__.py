"""What runs: building probes, the attempt boundary, the scheduler, per-probe state and the ring."""
