"""Ray Tune entry point shared by the trainable jobs: ``python -m ray_jobs.tune --job <job>``.

A job plugs in with a module ``ray_jobs.<job>.tuning`` (interface: docs/DEVELOPING.md).
"""
