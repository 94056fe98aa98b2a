"""Ray's errors for work lost with a node become `ClusterError` (rerun, exit 75)."""

import pytest
from ray.exceptions import (
    ActorDiedError,
    NodeDiedError,
    RayTaskError,
    UnserializableException,
)
from ray.train import WorkerGroupError
from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

from pinsage.errors import ClusterError
from pinsage.ray_session import _cluster_errors, lost_work_error


def _raised_from(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("dataset execution failed") from inner
    except RuntimeError as outer:
        return outer


def test_lost_work_is_told_from_failures_of_the_task_itself():
    assert lost_work_error(ActorDiedError()) is not None
    assert lost_work_error(_raised_from(NodeDiedError("node gone"))) is not None
    assert lost_work_error(RayTaskError("f", "tb", ActorDiedError())) is not None
    # As Ray Data re-raises it when the original cannot be rebuilt: text only.
    text_only = UnserializableException("ray.exceptions.ActorDiedError: it died")
    assert lost_work_error(text_only) is text_only
    # Ray Train: one worker's node stopped answering, the other lost its peer.
    health = WorkerHealthCheckFailedError("worker 0 unavailable", ActorDiedError())
    gloo = RuntimeError("gloo: Connection closed by peer")
    group = WorkerGroupError("Training failed", {0: health, 1: gloo})
    assert lost_work_error(group) is health
    assert lost_work_error(WorkerGroupError("failed", {0: gloo})) is None
    # A bug in a task, or anything else, stays what it is.
    assert lost_work_error(RayTaskError("f", "tb", ValueError("bad row"))) is None
    assert lost_work_error(UnserializableException("ValueError: bad row")) is None
    assert lost_work_error(_raised_from(KeyError("m"))) is None


def test_lost_work_becomes_a_cluster_error_with_its_own_exit_code():
    with pytest.raises(ClusterError, match="lost a node or worker") as info:
        with _cluster_errors():
            raise _raised_from(NodeDiedError("node 3 gone"))
    assert "node 3 gone" in str(info.value) and info.value.exit_code == 75
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError), _cluster_errors():
        raise ValueError("bad row")
