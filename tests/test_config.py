"""ExecutorConfig: defaults, validation (the offending field named), immutability."""

import dataclasses
import os

import pytest

import ftdag
from ftdag import ExecutorConfig

COUNT_FIELDS = ["max_workers", "max_in_flight", "worker_queue_cap"]
BACKENDS = ["auto", "threads", "processes", "sequential"]


class TestDefaults:
    def test_defaults(self):
        config = ExecutorConfig()
        assert config.max_workers == ftdag.available_cpus()
        assert config.max_in_flight == 2 * config.max_workers
        assert config.worker_queue_cap == 2
        assert config.backend == "auto"

    def test_max_in_flight_follows_max_workers(self):
        assert ExecutorConfig(max_workers=3).max_in_flight == 6
        assert ExecutorConfig(max_workers=1).max_in_flight == 2

    def test_explicit_values_are_kept(self):
        config = ExecutorConfig(max_workers=5, max_in_flight=7, worker_queue_cap=1, backend="threads")
        assert (config.max_workers, config.max_in_flight, config.worker_queue_cap, config.backend) == (
            5, 7, 1, "threads"
        )

    def test_positional_order(self):
        config = ExecutorConfig(4, 9, 3, "sequential")
        assert config == ExecutorConfig(max_workers=4, max_in_flight=9, worker_queue_cap=3, backend="sequential")

    def test_minimum_values(self):
        config = ExecutorConfig(max_workers=1, max_in_flight=1, worker_queue_cap=1)
        assert (config.max_workers, config.max_in_flight, config.worker_queue_cap) == (1, 1, 1)

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_every_backend_name_is_accepted(self, backend):
        assert ExecutorConfig(backend=backend).backend == backend

    def test_available_cpus(self):
        cpus = ftdag.available_cpus()
        assert isinstance(cpus, int) and cpus >= 1
        if hasattr(os, "sched_getaffinity"):
            assert cpus == len(os.sched_getaffinity(0))

    def test_in_flight_bound(self):
        assert ExecutorConfig(max_workers=2, max_in_flight=100, worker_queue_cap=2).in_flight_bound == 6
        assert ExecutorConfig(max_workers=2, max_in_flight=3, worker_queue_cap=2).in_flight_bound == 3


class TestImmutable:
    @pytest.mark.parametrize("field", COUNT_FIELDS + ["backend"])
    def test_frozen(self, field):
        config = ExecutorConfig()
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, field, 3)

    def test_equality_and_hash(self):
        assert ExecutorConfig(max_workers=2) == ExecutorConfig(max_workers=2, max_in_flight=4)
        assert hash(ExecutorConfig(max_workers=2)) == hash(ExecutorConfig(max_workers=2, max_in_flight=4))
        assert ExecutorConfig(max_workers=2) != ExecutorConfig(max_workers=3)


class TestValidation:
    @pytest.mark.parametrize("field", COUNT_FIELDS)
    @pytest.mark.parametrize("value", [0, -1, -100])
    def test_count_below_one(self, field, value):
        with pytest.raises(ValueError) as cm:
            ExecutorConfig(**{field: value})
        message = str(cm.value)
        assert field in message
        assert str(value) in message

    @pytest.mark.parametrize("field", COUNT_FIELDS)
    @pytest.mark.parametrize("value", ["2", 2.0, True, False, [2], 1 + 0j])
    def test_count_wrong_type(self, field, value):
        with pytest.raises(TypeError) as cm:
            ExecutorConfig(**{field: value})
        message = str(cm.value)
        assert field in message
        assert type(value).__name__ in message

    def test_worker_queue_cap_none(self):
        # None means "default" only for max_workers and max_in_flight.
        with pytest.raises(TypeError, match="worker_queue_cap"):
            ExecutorConfig(worker_queue_cap=None)

    def test_max_in_flight_checked_when_max_workers_given(self):
        with pytest.raises(ValueError, match="max_in_flight"):
            ExecutorConfig(max_workers=2, max_in_flight=0)

    def test_first_bad_field_is_named(self):
        with pytest.raises(ValueError) as cm:
            ExecutorConfig(max_workers=0, max_in_flight=0)
        assert "max_workers" in str(cm.value)

    @pytest.mark.parametrize("backend", ["thread", "process", "Threads", "", "auto ", "gil"])
    def test_unknown_backend(self, backend):
        with pytest.raises(ValueError) as cm:
            ExecutorConfig(backend=backend)
        message = str(cm.value)
        assert "backend" in message
        assert repr(backend) in message
        for name in BACKENDS:  # says what is allowed
            assert repr(name) in message

    @pytest.mark.parametrize("backend", [None, 1, b"threads", ["threads"]])
    def test_backend_wrong_type(self, backend):
        with pytest.raises(TypeError) as cm:
            ExecutorConfig(backend=backend)
        assert "backend" in str(cm.value)
        assert type(backend).__name__ in str(cm.value)


class TestExecutorArguments:
    def test_default_config(self):
        with ftdag.Executor() as ex:
            assert ex.config == ExecutorConfig()

    def test_config_is_kept(self):
        config = ExecutorConfig(backend="sequential", max_workers=1)
        with ftdag.Executor(config) as ex:
            assert ex.config is config

    @pytest.mark.parametrize("config", ["threads", {"backend": "threads"}, 4])
    def test_config_wrong_type(self, config):
        with pytest.raises(TypeError) as cm:
            ftdag.Executor(config)
        assert "ExecutorConfig" in str(cm.value)
        assert type(config).__name__ in str(cm.value)

    def test_fields_as_keywords(self):
        with ftdag.Executor(max_workers=4, backend="threads") as ex:
            assert ex.config == ExecutorConfig(max_workers=4, backend="threads")
        with ftdag.Executor(worker_queue_cap=1) as ex:
            assert ex.config.worker_queue_cap == 1

    def test_keywords_are_validated_like_the_config(self):
        with pytest.raises(ValueError, match="max_workers"):
            ftdag.Executor(max_workers=0)
        with pytest.raises(ValueError, match="backend"):
            ftdag.Executor(backend="gpu")

    def test_unknown_keyword_is_named(self):
        with pytest.raises(TypeError) as cm:
            ftdag.Executor(max_workers=2, workers=3)
        assert "'workers'" in str(cm.value)
        assert "max_workers" in str(cm.value)  # the valid names are listed

    def test_config_and_keywords_together(self):
        with pytest.raises(TypeError, match="not both") as cm:
            ftdag.Executor(ExecutorConfig(), max_workers=2)
        assert "max_workers" in str(cm.value)

    def test_entering_a_closed_executor_raises(self):
        ex = ftdag.Executor(backend="sequential")
        ex.close()
        with pytest.raises(RuntimeError, match="closed"), ex:
            pass  # pragma: no cover - never entered
