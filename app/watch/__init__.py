"""Targets watched between runs: a light probe of each scheduled pod's target, its state
on the pod's status, `target.unavailable` / `target.recovered` webhooks on a change."""
