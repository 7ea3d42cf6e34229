"""Batch inference on clusters with one tsrunner archive: Ray Data (`tsrunner.integrations.ray`)
and Spark (`tsrunner.integrations.spark`). Install with `pip install tsrunner[ray]` or
`tsrunner[spark]`; docs/scale-out.md shows both end to end.

The archive's path travels to the workers, never a loaded Runner: each worker process loads the
archive once (verifying its digest) with as many intra-op threads as the engine gives its task.
"""
